import http from 'k6/http';
import { sleep, check, fail } from 'k6';

export let options = {
  stages: [
    { duration: '1s', target: 2 },
    { duration: '1s', target: 899 }
  ]
};

export default function () {
  let userId = Math.floor(Math.random() * 899 + 1);

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
  let postRes = http.post(postUrl, postData, params);

  // Check if the response is 200
  if (!check(postRes, { 'POST /concert/wait is 200': (r) => r.status === 200 })) {
    fail('POST /concert/wait failed');
  }

  sleep(30);

  const getUrl = `http://localhost:8080/concert/reservation/days/1`;

  const getParams = {
    headers: {
      'Authorization': userId.toString()
    }
  };

  let getRes = http.get(getUrl, getParams);

  // Check if the response is 200
  if (!check(getRes, { 'GET /concert/reservation/days/1 is 200': (r) => r.status === 200 })) {
    fail('GET /concert/reservation/days/1 failed');
  }

  sleep(1);
}
