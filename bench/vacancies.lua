-- wrk script: GET the vacancies of a random calendar on one of the first 7 bench dates.
package.path = (os.getenv("BENCH_LUA_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require("common")

local app = os.getenv("BENCH_APP")
local services = common.pairs("BENCH_SERVICES")
local places = common.pairs("BENCH_PLACES")
local dates = common.list("BENCH_DATES")
local days = math.min(7, #dates)

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")

setup = common.setup
response = common.response
done = common.done

function init(args)
  common.init()
end

function request()
  sent = sent + 1
  local place = places[math.random(#places)]
  local service = services[tonumber(place[1])]
  local day = dates[math.random(days)]
  local path = "/" .. app .. "/calendars/" .. service[1] .. "/" .. day .. "/" .. place[2]
    .. "/vacancies?serviceTypeId=" .. service[2]
  return wrk.format(nil, path)
end
