-- wrk script: POST one pre-signed webhook body (WRK_BODY file) with its X-Hub-Signature-256
-- (WRK_SIG) on every request, and count the status codes seen.
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = os.getenv("WRK_SIG")

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    codes = {}
end

function response(status, headers, body)
    codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
    local all = {}
    for _, thread in ipairs(threads) do
        local c = thread:get("codes")
        for status, n in pairs(c) do
            all[status] = (all[status] or 0) + n
        end
    end
    local parts = {}
    for status, n in pairs(all) do
        table.insert(parts, status .. "=" .. n)
    end
    table.sort(parts)
    io.write("status codes: " .. table.concat(parts, " ") .. "\n")
end
