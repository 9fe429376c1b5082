-- Apply a batch of one patient's vitals events and return the patient's features.
-- Layout and semantics: features/KEYS.md. All keys share the {patient_id} hash tag.
--
-- KEYS[1] samples zset   member <75 bytes of packed values><event_id>, score observed_at (us)
-- KEYS[2] ids hash       event_id -> observed_at (us), the de-duplication set
-- KEYS[3] meta hash      as_of, accepted, duplicates, dropped
-- KEYS[4] alert hash     state, outbox (read only here, so the policy sees them in the
--                        same round trip; written by FeatureStore.save_scores)
-- KEYS[5] modal hash     notes, imaging: latest score of each other modality (read only
--                        here, so fusion sees them in the same round trip)
-- ARGV[1] ttl in ms, ARGV[2] NEWS2 look-back in us, ARGV[3] number of events,
-- then per event: event_id, observed_at (us, integer string), packed values.
--
-- Timestamps stay strings on the way into Redis commands: Lua would print a number
-- with 14 significant digits, and microsecond epochs have 16.
--
-- Returns {{as_of, accepted, duplicates, dropped, samples} (counts for this call), features,
-- news2, {alert state, alert outbox}, {notes, imaging}} where
-- features are little-endian doubles in features/windows.py FEATURE_NAMES order (NaN for
-- null) and news2 is
-- {rr, spo2, spo2_scale, supplemental_o2, sbp, hr, consciousness, temp}; false = null.

local samples_key, ids_key, meta_key = KEYS[1], KEYS[2], KEYS[3]
local ttl_ms = ARGV[1]
local lookback = tonumber(ARGV[2])
local n_events = tonumber(ARGV[3])
local HOUR = 3600000000
local DAY = 24 * HOUR
local WINDOWS = {HOUR, 6 * HOUR, DAY}
local N_VITALS = 8
local N_FIELDS = 11

local function us(x)
  return string.format('%.0f', x)
end

-- A sample member: observed_at (us) and 8 vitals as little-endian doubles (hr, rr, spo2,
-- temp, sbp, dbp, map, shock index; NaN where absent; the time in the member spares
-- reading the scores back), spo2_scale (0 = absent), supplemental_o2 (0 absent, 1 air,
-- 2 oxygen), consciousness (NUL = absent), then the event id (features/samples.py).
local PACKED = 75
local FORMAT = '<dddddddddBBc1'

local raw_as_of = redis.call('HGET', meta_key, 'as_of')
local as_of = raw_as_of and tonumber(raw_as_of) or nil
local accepted, duplicates, dropped = 0, 0, 0

for i = 0, n_events - 1 do
  local eid = ARGV[4 + 3 * i]
  local ts_raw = ARGV[5 + 3 * i]
  local ts = tonumber(ts_raw)
  if redis.call('HEXISTS', ids_key, eid) == 1 then
    duplicates = duplicates + 1
  elseif as_of and ts <= as_of - DAY then
    dropped = dropped + 1
  else
    redis.call('HSET', ids_key, eid, ts_raw)
    redis.call('ZADD', samples_key, ts_raw, ARGV[6 + 3 * i] .. eid)
    accepted = accepted + 1
    if not as_of or ts > as_of then
      as_of = ts
    end
  end
end

if not as_of then
  return redis.error_reply('update_vitals called with no events for a new patient')
end

local cutoff = us(as_of - DAY)
local expired = redis.call('ZRANGEBYSCORE', samples_key, '-inf', cutoff)
if #expired > 0 then
  for _, member in ipairs(expired) do
    redis.call('HDEL', ids_key, string.sub(member, PACKED + 1))
  end
  redis.call('ZREMRANGEBYSCORE', samples_key, '-inf', cutoff)
end

redis.call('HSET', meta_key, 'as_of', us(as_of))
redis.call('HINCRBY', meta_key, 'accepted', accepted)
redis.call('HINCRBY', meta_key, 'duplicates', duplicates)
redis.call('HINCRBY', meta_key, 'dropped', dropped)
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ttl_ms)
end

-- Load the window, newest first: every window is a suffix of the time line ending at
-- as_of, so one backwards pass per vital fills all three windows.
local rows = redis.call('ZREVRANGEBYSCORE', samples_key, '+inf', '(' .. cutoff)
local times, eids, cols = {}, {}, {}
for f = 1, N_FIELDS do
  cols[f] = {}
end
local count = 0
-- Unpacked into locals, not a table per sample: this loop runs for every sample of the
-- day on every call.
local c1, c2, c3, c4, c5, c6, c7, c8 = cols[1], cols[2], cols[3], cols[4], cols[5], cols[6],
  cols[7], cols[8]
local c9, c10, c11 = cols[9], cols[10], cols[11]
local decode = struct.unpack
for k = 1, #rows do
  count = count + 1
  local member = rows[k]
  eids[count] = string.sub(member, PACKED + 1)
  local t, v1, v2, v3, v4, v5, v6, v7, v8, scale, o2, avpu = decode(FORMAT, member)
  times[count] = t
  -- NaN (absent) is the only value not equal to itself
  if v1 == v1 then c1[count] = v1 end
  if v2 == v2 then c2[count] = v2 end
  if v3 == v3 then c3[count] = v3 end
  if v4 == v4 then c4[count] = v4 end
  if v5 == v5 then c5[count] = v5 end
  if v6 == v6 then c6[count] = v6 end
  if v7 == v7 then c7[count] = v7 end
  if v8 == v8 then c8[count] = v8 end
  if scale > 0 then c9[count] = scale end
  if o2 > 0 then c10[count] = o2 - 1 end
  if avpu ~= '\0' then c11[count] = avpu end
end

local function num(x)
  return string.format('%.17g', x)
end

-- Features go back as one string of little-endian doubles (NaN = null), which the client
-- reads with one numpy call instead of parsing 168 decimal strings per patient.
local NAN = 0 / 0
local features = {}
local out = 0
local function push(value)
  out = out + 1
  features[out] = value
end

-- Sums are taken of offsets from the vital's newest sample (value ky at time kt), which
-- lies in every non-empty window: offsets stay within each window's own spread, so the
-- one-pass variance and slope keep full precision (no large-mean cancellation).
for v = 1, N_VITALS do
  local col = cols[v]
  local n, sy, syy, sx, sxx, sxy = 0, 0, 0, 0, 0, 0
  local lo, hi, last, last_t, last_e, t_lo, ky, kt
  local w = 1
  local function snapshot()
    if n == 0 then
      push(NAN); push(NAN); push(NAN); push(NAN); push(NAN); push(0); push(NAN)
      return
    end
    local my = sy / n
    local var = syy / n - my * my
    if var < 0 then var = 0 end
    push(last)
    push(ky + my)
    push(lo)
    push(hi)
    push(math.sqrt(var))
    push(n)
    if n < 2 or t_lo == kt then
      push(NAN)
    else
      push((sxy - sx * sy / n) / (sxx - sx * sx / n))
    end
  end
  local edge = as_of - WINDOWS[1] -- a sample at or before it is outside window w
  for k = 1, count do
    local t = times[k]
    while t <= edge do
      snapshot()
      w = w + 1
      edge = w <= 3 and as_of - WINDOWS[w] or -math.huge
    end
    local y = col[k]
    if y ~= nil then
      if ky == nil then
        ky, kt = y, t
        last, last_t, last_e = y, t, eids[k]
      elseif t == last_t and eids[k] > last_e then
        last, last_e = y, eids[k]
      end
      local dx, dy = (t - kt) / HOUR, y - ky
      n = n + 1
      sy = sy + dy
      syy = syy + dy * dy
      sx = sx + dx
      sxx = sxx + dx * dx
      sxy = sxy + dx * dy
      if lo == nil or y < lo then lo = y end
      if hi == nil or y > hi then hi = y end
      t_lo = t
    end
  end
  while w <= 3 do
    snapshot()
    w = w + 1
  end
end

-- NEWS2 takes each parameter's latest value observed at most `lookback` before as_of
-- (ties on observed_at go to the greater event_id, as for `last`).
local since = as_of - lookback
local function latest_row(f)
  local best = nil
  local col = cols[f]
  for k = 1, count do
    local t = times[k]
    if t < since or (best ~= nil and t < times[best]) then
      break
    end
    if col[k] ~= nil and (best == nil or eids[k] > eids[best]) then
      best = k
    end
  end
  return best
end
local function news_value(f, as_text)
  local k = latest_row(f)
  if k == nil then
    return false
  end
  return as_text and cols[f][k] or num(cols[f][k])
end
local spo2_row = latest_row(3)
local news = {
  news_value(2),
  news_value(3),
  spo2_row and cols[9][spo2_row] and num(cols[9][spo2_row]) or false,
  news_value(10),
  news_value(5),
  news_value(1),
  news_value(11, true),
  news_value(4),
}

local alert = redis.call('HMGET', KEYS[4], 'state', 'outbox')
local modal = redis.call('HMGET', KEYS[5], 'notes', 'imaging')

local packed = struct.pack('<' .. string.rep('d', out), unpack(features))

return {{us(as_of), accepted, duplicates, dropped, count}, packed, news, alert, modal}
