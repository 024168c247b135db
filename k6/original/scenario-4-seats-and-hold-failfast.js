import http from 'k6/http';
import { sleep, check, fail } from 'k6';

export let options = {
  stages: [
    { duration: '1s', target: 1 },
    { duration: '1s', target: 1 }
  ]
};

export default function () {
  let userId = Math.floor(Math.random() * 899 + 1);
  let seatId = Math.floor(Math.random() * 50 + 1);

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

  sleep(20);

  const getSeatUrl = 'http://localhost:8080/concert/seats/1';

  const getParams = {
    headers: {
      'Authorization': userId.toString()
    }
  };

  let getSeatRes = http.get(getSeatUrl, getParams);

  // Check if the response is 200
  if (!check(getSeatRes, { 'GET /concert/seats/1 is 200': (r) => r.status === 200 })) {
    fail('GET /concert/seats/1 failed');
  }

  sleep(1);

  const getUrl = `http://localhost:8080/concert/seat`;

  sleep(1);

  const patchData = JSON.stringify({
    "@class": "concertSeat",
    "userId": userId,
    "concertDetailId": 1,
    "seatNo": seatId
  });

  const params3 = {
    headers: {
      'Authorization': userId.toString(),
      'Content-Type': 'application/json'
    }
  };

  let patchRes = http.patch(getUrl, patchData, params3);

  // Check if the response is 200
  if (!check(patchRes, { 'PATCH /concert/seat is 200': (r) => r.status === 200 })) {
    fail('PATCH /concert/seat failed');
  }

  sleep(1);
}
