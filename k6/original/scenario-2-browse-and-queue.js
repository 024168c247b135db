import http from 'k6/http';
import { sleep } from 'k6';

export let options = {
  stages:[
        {duration: '5s', target: 50},
        {duration: '20s',target: 899}
        ]
};

export default function(){
        const BASE_URL = `http://localhost:8080/concert/1`;
        const BASE_URL2 = `http://localhost:8080/concerts/1`;
        let userId = Math.floor(Math.random() * 899 +1)

        http.get(BASE_URL);
        http.get(BASE_URL2);


        const postData = JSON.stringify({
                "userId": userId,
                "@class": "queueReq"
        });

        const params = {
                headers: {
                'Content-Type': 'application/json'
                }

        };

        const postUrl = 'http://localhost:8080/concert/wait';
        http.post(postUrl,postData,params);


        sleep(1);


}
