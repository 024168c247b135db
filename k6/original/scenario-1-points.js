import http from 'k6/http';
import { sleep } from 'k6';

export let options = {
  stages:[
        {duration: '1s', target: 1},
        {duration: '1',target: 1}
        ]
};

export default function(){
        const BASE_URL = `http://localhost:8080/point`;
        let userId = Math.floor(Math.random() * 899 +1)

        http.get(`${BASE_URL}/${userId}`);


        const postData = JSON.stringify({
                "userId": userId,
                "charge": 1000,
                "@class": "pointReq"

        });

        const params = {
                headers: {
                'Content-Type': 'application/json'
                }

        };

        const patchUrl = 'http://localhost:8080/point';
        http.patch(patchUrl,postData,params);


        sleep(1);


}
