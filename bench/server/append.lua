-- wrk: append one event per request to the session in $SESSION, as the key in $KEY.
local words = dofile("bench/server/words.lua")
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
local path = "/v1/sessions/" .. os.getenv("SESSION") .. "/events"
request = function()
  n = n + 1
  local body = string.format(
    '{"kind":"message","role":"user","content":"customer asks about %s and %s, note %d"}',
    words[n % #words + 1], words[(n * 7) % #words + 1], n)
  return wrk.format(nil, path, nil, body)
end
