-- Alternates the Flask app's two routes.
local paths = { "/", "/user/alice" }
local i = 0
request = function()
  i = (i % #paths) + 1
  return wrk.format("GET", paths[i])
end
