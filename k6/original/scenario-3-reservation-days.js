import http from 'k6/http';
import { sleep } from 'k6';

export let options = {
  stages:[
        {duration: '1s', target: 2},
        {duration: '1s',target: 899}
        ]
};

export default function(){

        let userId = Math.floor(Math.random() * 899 +1)

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



        sleep(30);


        const getUrl = `http://localhost:8080/concert/reservation/days/1`;

         const getParams = {
                 headers: {
                 'Authorization': userId.toString()
                 }
         };

  http.get(getUrl, getParams);

  sleep(1);
}
