-- wrk script: POST a booking body to /bench/bare (the API parses and validates it, answers
-- JSON, never touches the database): the framework's floor for the booking route.
package.path = (os.getenv("BENCH_LUA_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require("common")

local services = common.pairs("BENCH_SERVICES")
local starts = common.list("BENCH_STARTS")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")

setup = common.setup
response = common.response
done = common.done

function init(args)
  common.init()
end

function request()
  sent = sent + 1
  local service = services[math.random(#services)]
  local body = '{"serviceTypeId":"' .. service[2] .. '","startTime":'
    .. starts[math.random(#starts)]
    .. ',"channel":"FaceToFace","contactPhoneNumber":"020 7946 0018",'
    .. '"contactEmail":"bench@example.com"}'
  return wrk.format(nil, "/bench/bare", nil, body)
end
