-- wrk script for bench/run's http "json" case: GET /json with the request
-- headers a browser behind a proxy sends (20 with the Host wrk adds), so the
-- server parses a realistic header block; every request carries a different
-- X-Request-Id, which the servers echo.
wrk.method = "GET"
wrk.path = "/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
wrk.headers["Accept"] = "application/json, text/plain, */*"
wrk.headers["Accept-Language"] = "en-GB,en;q=0.8,de;q=0.5"
wrk.headers["Accept-Encoding"] = "gzip, deflate, br"
wrk.headers["Referer"] = "https://shop.example.com/orders/ord_7f3a9c21"
wrk.headers["Origin"] = "https://shop.example.com"
wrk.headers["Connection"] = "keep-alive"
wrk.headers["Cookie"] = "session=9f2c4e1a7b3d5f60; theme=dark; consent=analytics%3D0%26ads%3D0"
wrk.headers["Authorization"] = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0ODI5MTMiLCJleHAiOjE3OTk5OTk5OTl9.c2lnbmF0dXJl"
wrk.headers["Cache-Control"] = "no-cache"
wrk.headers["Pragma"] = "no-cache"
wrk.headers["Sec-Fetch-Dest"] = "empty"
wrk.headers["Sec-Fetch-Mode"] = "cors"
wrk.headers["Sec-Fetch-Site"] = "same-origin"
wrk.headers["X-Forwarded-For"] = "203.0.113.7, 10.0.0.12"
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["X-Real-IP"] = "203.0.113.7"
wrk.headers["If-None-Match"] = "W/\"4f1-9c2e\""
-- Host is the 20th (wrk adds it); X-Request-Id is set per request below

local n = 0
request = function()
  n = n + 1
  wrk.headers["X-Request-Id"] = string.format("req-%08x", n)
  return wrk.format()
end
