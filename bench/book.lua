-- wrk script: book distinct vacant slots. Used for both the API (a) and the reference app (d):
-- the paths and bodies are the same.
--
-- Request number k of thread t (of n threads) books place number s = k * n + t in the order
-- (calendar, start, date): calendars vary fastest, so concurrent requests lock different
-- calendars, and each thread walks a disjoint sequence, so 409s are rare. BENCH_PLACES lists a
-- capacity-2 unit twice: it gets two bookings per start.
package.path = (os.getenv("BENCH_LUA_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require("common")

local app = os.getenv("BENCH_APP")
local services = common.pairs("BENCH_SERVICES") -- service id : its service type id
local places = common.pairs("BENCH_PLACES") -- service number (1-based) : cuIndex
local starts = common.list("BENCH_STARTS") -- minutes after local midnight
local dates = common.list("BENCH_DATES") -- YYYY-MM-DD, from tomorrow on
local threads = tonumber(os.getenv("BENCH_THREADS"))

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
  local s = sent * threads + tid
  sent = sent + 1
  local place = places[s % #places + 1]
  local rest = math.floor(s / #places)
  local start = starts[rest % #starts + 1]
  local day = dates[math.floor(rest / #starts) + 1]
  local service = services[tonumber(place[1])]
  local path = "/" .. app .. "/calendars/" .. service[1] .. "/" .. day .. "/" .. place[2]
    .. "/appointments"
  local body = '{"serviceTypeId":"' .. service[2] .. '","startTime":' .. start
    .. ',"channel":"FaceToFace","contactPhoneNumber":"020 7946 0018",'
    .. '"contactEmail":"bench@example.com"}'
  return wrk.format(nil, path, nil, body)
end
