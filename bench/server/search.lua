-- wrk: keyword search over the events appended by append.lua, as the key in $KEY.
local words = dofile("bench/server/words.lua")
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
request = function()
  n = n + 1
  local body = string.format(
    '{"text":"%s %s","mode":"keyword","targets":["event"],"limit":10}',
    words[n % #words + 1], words[(n * 5) % #words + 1])
  return wrk.format(nil, "/v1/search", nil, body)
end
