-- Apply a batch of one patient's vitals events; return the running window state its features
-- come from (features/sums.py), its NEWS2 inputs, alert state and other modalities' scores.
-- Layout and semantics: features/KEYS.md. All keys share the {patient_id} hash tag.
--
-- KEYS[1] samples zset   member <75 bytes of packed values><event_id>, score observed_at (us)
-- KEYS[2] ids hash       event_id -> observed_at (us), the de-duplication set
-- KEYS[3] meta hash      as_of, accepted, duplicates, dropped; `sums` (running window
--                        aggregates) and `l1`..`l8`, `l10`, `l11` (latest sample per field)
-- KEYS[4] alert hash     state, outbox (read only here, so the policy sees them in the
--                        same round trip; written by FeatureStore.save_scores)
-- KEYS[5] modal hash     notes, imaging: latest score of each other modality (read only
--                        here, so fusion sees them in the same round trip)
-- KEYS[6] blocks hash    clock hour -> each vital's min and max over that hour's samples
-- ARGV[1] ttl in ms, ARGV[2] NEWS2 look-back in us, ARGV[3] number of events,
-- then per event: event_id, observed_at (us, integer string), packed values.
--
-- Timestamps stay strings on the way into Redis commands: Lua would print a number
-- with 14 significant digits, and microsecond epochs have 16.
--
-- Returns {{as_of, accepted, duplicates, dropped, samples} (counts for this call), sums,
-- latest, news2, {alert state, alert outbox}, {notes, imaging}} where sums is the running
-- state `S` below as stored (256 little-endian doubles), latest the latest value of each
-- vital (8 doubles, NaN where none is kept), from which features/sums.py derives the
-- features of every patient of a batch at once, and news2 is
-- {rr, spo2, spo2_scale, supplemental_o2, sbp, hr, consciousness, temp}; false = null.
--
-- The windows are kept incrementally (written by hand: no Redis structure keeps a
-- windowed mean, spread, slope and extremes): per vital and window the count, sums of
-- offsets, min and max. A call adds its new samples, subtracts the samples that its
-- advance of as_of pushes out of each window (read by score range, so each sample is
-- read about once per window over its life). A window is rescanned when its anchor
-- (below) leaves it, or after as many removals as it holds samples (which bounds the
-- rounding the running sums gather); when a sample leaving it held a vital's min or max,
-- only that vital's extremes are read back: from the hour blocks wholly inside the window
-- plus the samples of its oldest, partly expired hour (reading a day of samples was a
-- quarter of a call).

local samples_key, ids_key, meta_key, blocks_key = KEYS[1], KEYS[2], KEYS[3], KEYS[6]
local ttl_ms = ARGV[1]
local lookback = tonumber(ARGV[2])
local n_events = tonumber(ARGV[3])
local HOUR = 3600000000
local DAY = 24 * HOUR
local WINDOWS = {HOUR, 6 * HOUR, DAY}
local N_VITALS = 8
-- Fields with a latest sample kept: the 8 vitals, supplemental_o2 (10), consciousness
-- (11). spo2_scale (9) is read from the latest SpO2 sample, which it qualifies.
local LATEST = {1, 2, 3, 4, 5, 6, 7, 8, 10, 11}
local NAN = 0 / 0

local function us(x)
  return string.format('%.0f', x)
end

-- A sample member: observed_at (us) and 8 vitals as little-endian doubles (hr, rr, spo2,
-- temp, sbp, dbp, map, shock index; NaN where absent; the time in the member spares
-- reading the scores back), spo2_scale (0 = absent), supplemental_o2 (0 absent, 1 air,
-- 2 oxygen), consciousness (NUL = absent), then the event id (features/samples.py).
local PACKED = 75
local FORMAT = '<dddddddddBBc1'
local VALUES_FORMAT = '<ddddddddd' -- observed_at and the 8 vitals alone
local struct_unpack = struct.unpack

-- observed_at and the 11 fields of a member (nil where absent).
local function decode(member)
  local t, v1, v2, v3, v4, v5, v6, v7, v8, scale, o2, avpu = struct_unpack(FORMAT, member)
  local v = {}
  -- NaN (absent) is the only value not equal to itself
  if v1 == v1 then v[1] = v1 end
  if v2 == v2 then v[2] = v2 end
  if v3 == v3 then v[3] = v3 end
  if v4 == v4 then v[4] = v4 end
  if v5 == v5 then v[5] = v5 end
  if v6 == v6 then v[6] = v6 end
  if v7 == v7 then v[7] = v7 end
  if v8 == v8 then v[8] = v8 end
  if scale > 0 then v[9] = scale end
  if o2 > 0 then v[10] = o2 - 1 end
  if avpu ~= '\0' then v[11] = avpu end
  return t, v
end

-- The running state is one flat array S, exactly as stored in `sums` (no table per
-- window and vital: this runs on every call). S[1] version; per window w: S[2w] samples
-- in the window, S[2w + 1] removals since its last rescan; per window and vital, from
-- stat(w, v): n, sums of offsets (y, y², x, x², xy) from an anchor sample (value ky at
-- time kt: the first sample into an empty window, or the newest when it is rescanned; a
-- window whose anchor leaves it is rescanned, so offsets stay within the window's own
-- spread and the variance and slope keep their precision), min, max, ky, kt;
-- then per vital, AT_LATEST + v: samples at the vital's latest observed_at; last, the
-- `accepted` counter they were written with (code that keeps no sums, layout 2.1, adds
-- samples without them: a count that moved since means rebuild).
local SUMS_VERSION = 2 -- 2: the hour blocks are kept too (layout 2.3)
local STATS_AT = 7
local AT_LATEST = STATS_AT + 3 * N_VITALS * 10
local SUMS_SIZE = AT_LATEST + N_VITALS + 1
local SUMS_FORMAT = '<' .. string.rep('d', SUMS_SIZE)
local S

local function stat(w, v)
  return STATS_AT + ((w - 1) * N_VITALS + v - 1) * 10
end

local function add(b, t, y)
  local n = S[b + 1]
  if n == 0 then
    S[b + 7], S[b + 8], S[b + 9], S[b + 10] = y, y, y, t
  else
    if y < S[b + 7] then S[b + 7] = y end
    if y > S[b + 8] then S[b + 8] = y end
  end
  local dx, dy = (t - S[b + 10]) / HOUR, y - S[b + 9]
  S[b + 1] = n + 1
  S[b + 2] = S[b + 2] + dy
  S[b + 3] = S[b + 3] + dy * dy
  S[b + 4] = S[b + 4] + dx
  S[b + 5] = S[b + 5] + dx * dx
  S[b + 6] = S[b + 6] + dx * dy
end

-- Returns true when the removed value was the window's min or max (now unknown).
local function remove(b, t, y)
  local n = S[b + 1] - 1
  S[b + 1] = n
  if n == 0 then
    S[b + 2], S[b + 3], S[b + 4], S[b + 5], S[b + 6], S[b + 7], S[b + 8] = 0, 0, 0, 0, 0, NAN,
      NAN
    return false
  end
  local dx, dy = (t - S[b + 10]) / HOUR, y - S[b + 9]
  S[b + 2] = S[b + 2] - dy
  S[b + 3] = S[b + 3] - dy * dy
  S[b + 4] = S[b + 4] - dx
  S[b + 5] = S[b + 5] - dx * dx
  S[b + 6] = S[b + 6] - dx * dy
  return y == S[b + 7] or y == S[b + 8]
end

-- State as of the previous call.
local meta = redis.call('HMGET', meta_key, 'as_of', 'accepted', 'sums', 'l1', 'l2', 'l3',
  'l4', 'l5', 'l6', 'l7', 'l8', 'l10', 'l11')
local as_of = meta[1] and tonumber(meta[1]) or nil
local old_as_of = as_of
local old_accepted = tonumber(meta[2] or '0')
local have_sums = false
if as_of and meta[3] and #meta[3] == 8 * SUMS_SIZE then
  S = {struct_unpack(SUMS_FORMAT, meta[3])}
  S[SUMS_SIZE + 1] = nil -- struct.unpack's next position
  have_sums = S[1] == SUMS_VERSION and S[SUMS_SIZE] == old_accepted
end
-- Hour blocks (KEYS[6]): per clock hour of observed_at, each vital's min and max over
-- every sample of that hour accepted (written by hand for the same reason as the sums).
-- A block wholly inside a window holds all its samples still, so a window's extremes are
-- its whole blocks' and those of the samples of its oldest hour. Cached for the call.
local BLOCK_FORMAT = '<' .. string.rep('d', 2 * N_VITALS)
local blocks, blocks_changed = {}, {}

local function block_of(t)
  return math.floor(t / HOUR)
end

local function block(b)
  local v = blocks[b]
  if v == nil then
    local raw = have_sums and redis.call('HGET', blocks_key, string.format('%d', b))
    if raw then
      v = {struct_unpack(BLOCK_FORMAT, raw)}
      v[2 * N_VITALS + 1] = nil -- struct.unpack's next position
    else
      v = {}
      for i = 1, 2 * N_VITALS do v[i] = NAN end
    end
    blocks[b] = v
  end
  return v
end

-- A sample's vitals (v[1..8], nil where absent) into its hour's block.
local function block_add(t, v)
  local b = block_of(t)
  local m = block(b)
  for f = 1, N_VITALS do
    local y = v[f]
    if y ~= nil then
      -- an empty slot is NaN, which compares false
      if not (m[f] <= y) then m[f] = y end
      if not (m[N_VITALS + f] >= y) then m[N_VITALS + f] = y end
    end
  end
  blocks_changed[b] = true
end

-- Latest sample per field: time, event id, member.
local latest_t, latest_e, latest_m, latest_changed = {}, {}, {}, {}
if have_sums then
  for j, f in ipairs(LATEST) do
    local member = meta[3 + j]
    if member then
      latest_t[f] = struct_unpack('<d', member)
      latest_e[f] = string.sub(member, PACKED + 1)
      latest_m[f] = member
    end
  end
end

-- The latest sample of each field; ties on observed_at go to the greater event_id.
local function note_latest(member, t, eid, v)
  for _, f in ipairs(LATEST) do
    if v[f] ~= nil then
      local lt = latest_t[f]
      if lt == nil or t > lt then
        latest_t[f], latest_e[f], latest_m[f], latest_changed[f] = t, eid, member, true
        if f <= N_VITALS then S[AT_LATEST + f] = 1 end
      elseif t == lt then
        if f <= N_VITALS then S[AT_LATEST + f] = S[AT_LATEST + f] + 1 end
        if eid > latest_e[f] then
          latest_e[f], latest_m[f], latest_changed[f] = eid, member, true
        end
      end
    end
  end
end

local accepted, duplicates, dropped = 0, 0, 0
local new = {}
for i = 0, n_events - 1 do
  local eid = ARGV[4 + 3 * i]
  local ts_raw = ARGV[5 + 3 * i]
  local ts = tonumber(ts_raw)
  if as_of and ts <= as_of - DAY then
    -- a redelivery of a sample since expired is still a duplicate
    if redis.call('HEXISTS', ids_key, eid) == 1 then
      duplicates = duplicates + 1
    else
      dropped = dropped + 1
    end
  elseif redis.call('HSETNX', ids_key, eid, ts_raw) == 0 then
    duplicates = duplicates + 1
  else
    local member = ARGV[6 + 3 * i] .. eid
    redis.call('ZADD', samples_key, ts_raw, member)
    accepted = accepted + 1
    new[accepted] = member
    if not as_of or ts > as_of then
      as_of = ts
    end
  end
end

if not as_of then
  return redis.error_reply('update_vitals called with no events for a new patient')
end

local cutoff = us(as_of - DAY)

-- lost[w][f]: the min or max of vital f left window w with a removed sample.
local lost = {{}, {}, {}}

-- A sample's vitals (t, v as decoded) into window w.
local function enter(w, t, v)
  for f = 1, N_VITALS do
    local y = v[f]
    if y ~= nil then add(stat(w, f), t, y) end
  end
  S[2 * w] = S[2 * w] + 1
end

-- Delete the event ids of samples (members) that left the day, in chunks: unpack's stack
-- is bounded.
local function forget(members)
  for i = 1, #members, 1000 do
    local ids = {}
    for k = i, math.min(i + 999, #members) do
      ids[#ids + 1] = string.sub(members[k], PACKED + 1)
    end
    redis.call('HDEL', ids_key, unpack(ids))
  end
end

local rescan = {}
if have_sums then
  -- Add the new samples to the windows as they were (edges at the old as_of), then
  -- remove whatever the advance of as_of pushed out, new samples included.
  for k = 1, accepted do
    local member = new[k]
    local t, v = decode(member)
    note_latest(member, t, string.sub(member, PACKED + 1), v)
    block_add(t, v)
    for w = 1, 3 do
      if t > old_as_of - WINDOWS[w] then enter(w, t, v) end
    end
  end
  if as_of > old_as_of then
    local row = {} -- one leaving sample's vitals (NaN where absent), reused: no table per row
    for w = 1, 3 do
      -- samples at or before the new edge that were after the old one
      local gone = redis.call('ZRANGEBYSCORE', samples_key, '(' .. us(old_as_of - WINDOWS[w]),
        us(as_of - WINDOWS[w]))
      local lost_w = lost[w]
      for i = 1, #gone do
        local t
        t, row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8] =
          struct_unpack(VALUES_FORMAT, gone[i])
        for f = 1, N_VITALS do
          local y = row[f]
          if y == y and remove(stat(w, f), t, y) then lost_w[f] = true end
        end
      end
      S[2 * w] = S[2 * w] - #gone
      if w == 3 then forget(gone) end
      S[2 * w + 1] = S[2 * w + 1] + #gone
      if S[2 * w + 1] > S[2 * w] + 32 then rescan[w] = true end
      for f = 1, N_VITALS do
        local b = stat(w, f)
        -- an anchor outside the window would let offsets outgrow the window's spread
        if S[b + 1] > 0 and S[b + 10] <= as_of - WINDOWS[w] then rescan[w] = true end
      end
    end
    redis.call('ZREMRANGEBYSCORE', samples_key, '-inf', cutoff)
    -- Blocks that left the day (one more is kept: the hour of the cutoff). Blocks exist
    -- only from the old cutoff's hour to the old as_of's, so this is at most 26 fields.
    local gone_blocks = {}
    for b = block_of(old_as_of - DAY), math.min(block_of(as_of - DAY) - 1, block_of(old_as_of)) do
      gone_blocks[#gone_blocks + 1] = string.format('%d', b)
      blocks[b], blocks_changed[b] = nil, nil
    end
    if #gone_blocks > 0 then
      redis.call('HDEL', blocks_key, unpack(gone_blocks))
    end
  end
else
  -- A new patient, or state written before the running sums (KEYS.md 2.1): build them
  -- from the samples kept.
  local expired = redis.call('ZRANGEBYSCORE', samples_key, '-inf', cutoff)
  if #expired > 0 then
    forget(expired)
    redis.call('ZREMRANGEBYSCORE', samples_key, '-inf', cutoff)
  end
  redis.call('DEL', blocks_key) -- rebuilt below from the samples kept
  S = {SUMS_VERSION}
  for i = 2, SUMS_SIZE do S[i] = 0 end
  rescan = {true, true, true}
  for _, f in ipairs(LATEST) do
    latest_changed[f] = true -- a field with no sample kept loses any stale entry
  end
end

-- A field whose latest sample left the day has no sample left at all.
for _, f in ipairs(LATEST) do
  if latest_t[f] and latest_t[f] <= as_of - DAY then
    latest_t[f], latest_e[f], latest_m[f], latest_changed[f] = nil, nil, nil, true
    if f <= N_VITALS then S[AT_LATEST + f] = 0 end
  end
end

-- Rescan: one pass over the widest window that needs it refills every window that needs
-- it (windows are suffixes of the time line ending at as_of).
local widest = (rescan[3] and 3) or (rescan[2] and 2) or (rescan[1] and 1) or nil
if widest then
  -- newest first, so that each window is anchored at its newest sample, which stays in
  -- it longest; the samples of a narrower window are a prefix of these rows
  local rows = redis.call('ZREVRANGEBYSCORE', samples_key, '+inf',
    '(' .. us(as_of - WINDOWS[widest]))
  local count = #rows
  if not have_sums then
    for i = 1, count do
      local member = rows[i]
      local t, v = decode(member)
      note_latest(member, t, string.sub(member, PACKED + 1), v)
      block_add(t, v)
    end
  end
  -- The rows as columns (time, each vital; NaN where absent), then each rescanned window
  -- and vital summed in local variables: the same operations in the same order as `add`
  -- on each row, at about half the cost of a table per row and a call per value
  -- (rescans were the largest section of a call, BENCHMARKS.md).
  local T, Y = {}, {}
  for f = 1, N_VITALS do Y[f] = {} end
  local Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8 = Y[1], Y[2], Y[3], Y[4], Y[5], Y[6], Y[7], Y[8]
  for i = 1, count do
    T[i], Y1[i], Y2[i], Y3[i], Y4[i], Y5[i], Y6[i], Y7[i], Y8[i] =
      struct_unpack(VALUES_FORMAT, rows[i])
  end
  for w = 1, widest do
    if rescan[w] then
      local edge = as_of - WINDOWS[w]
      local m = 0
      while m < count and T[m + 1] > edge do m = m + 1 end
      S[2 * w], S[2 * w + 1] = m, 0
      for f = 1, N_VITALS do
        local col, b = Y[f], stat(w, f)
        local n, sy, syy, sx, sxx, sxy, lo, hi, ky, kt = 0, 0, 0, 0, 0, 0, NAN, NAN, 0, 0
        for i = 1, m do
          local y = col[i]
          if y == y then -- NaN: no value
            local t = T[i]
            if n == 0 then
              lo, hi, ky, kt = y, y, y, t
            else
              if y < lo then lo = y end
              if y > hi then hi = y end
            end
            local dx, dy = (t - kt) / HOUR, y - ky
            n = n + 1
            sy = sy + dy
            syy = syy + dy * dy
            sx = sx + dx
            sxx = sxx + dx * dx
            sxy = sxy + dx * dy
          end
        end
        S[b + 1], S[b + 2], S[b + 3], S[b + 4], S[b + 5] = n, sy, syy, sx, sxx
        S[b + 6], S[b + 7], S[b + 8], S[b + 9], S[b + 10] = sxy, lo, hi, ky, kt
      end
    end
  end
end

-- An extreme that left a window not rescanned: the min and max of that vital alone, from
-- the samples of the window's oldest hour (one double each) and the blocks of the hours
-- after it (the newest one included: it holds no sample after as_of).
for w = 1, 3 do
  if not rescan[w] and next(lost[w]) then
    local edge = as_of - WINDOWS[w]
    local first = block_of(edge)
    local rows = redis.call('ZRANGEBYSCORE', samples_key, '(' .. us(edge),
      '(' .. us((first + 1) * HOUR))
    local whole, fields = {}, {}
    for b = first + 1, block_of(as_of) do
      if blocks[b] then
        whole[#whole + 1] = blocks[b]
      else
        fields[#fields + 1] = string.format('%d', b)
      end
    end
    if #fields > 0 then
      for _, raw in ipairs(redis.call('HMGET', blocks_key, unpack(fields))) do
        if raw then whole[#whole + 1] = raw end
      end
    end
    for f in pairs(lost[w]) do
      local b = stat(w, f)
      if S[b + 1] > 0 then
        local lo, hi, at = math.huge, -math.huge, 1 + 8 * f
        for k = 1, #rows do
          local y = struct_unpack('<d', rows[k], at)
          if y == y then
            if y < lo then lo = y end
            if y > hi then hi = y end
          end
        end
        for k = 1, #whole do
          local m, y, z = whole[k], nil, nil
          if type(m) == 'string' then
            y = struct_unpack('<d', m, 1 + 8 * (f - 1))
            z = struct_unpack('<d', m, 1 + 8 * (N_VITALS + f - 1))
          else
            y, z = m[f], m[N_VITALS + f]
          end
          -- NaN (no value that hour) fails both comparisons
          if y < lo then lo = y end
          if z > hi then hi = z end
        end
        S[b + 7], S[b + 8] = lo, hi
      end
    end
  end
end

-- Write the state back; a call that accepted nothing into state that was current (a read,
-- or only redeliveries) changed none of it.
local packed_sums
if accepted > 0 or not have_sums then
  S[SUMS_SIZE] = old_accepted + accepted
  packed_sums = struct.pack(SUMS_FORMAT, unpack(S))
  local fields = {'as_of', us(as_of), 'accepted', us(S[SUMS_SIZE]), 'sums', packed_sums}
  local cleared = {}
  for _, f in ipairs(LATEST) do
    if latest_changed[f] then
      if latest_m[f] then
        fields[#fields + 1] = 'l' .. f
        fields[#fields + 1] = latest_m[f]
      else
        cleared[#cleared + 1] = 'l' .. f
      end
    end
  end
  redis.call('HSET', meta_key, unpack(fields))
  if #cleared > 0 then
    redis.call('HDEL', meta_key, unpack(cleared))
  end
  local changed = {}
  for b in pairs(blocks_changed) do
    changed[#changed + 1] = string.format('%d', b)
    changed[#changed + 1] = struct.pack(BLOCK_FORMAT, unpack(blocks[b]))
  end
  if #changed > 0 then
    redis.call('HSET', blocks_key, unpack(changed))
  end
  redis.call('PEXPIRE', blocks_key, ttl_ms)
end
if duplicates > 0 then
  redis.call('HINCRBY', meta_key, 'duplicates', duplicates)
end
if dropped > 0 then
  redis.call('HINCRBY', meta_key, 'dropped', dropped)
end
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ttl_ms)
end

-- The latest value of each field (decoded once per distinct sample).
local latest_v = {}
local decoded = {}
for _, f in ipairs(LATEST) do
  local member = latest_m[f]
  if member then
    if decoded[member] == nil then
      local _, v = decode(member)
      decoded[member] = v
    end
    latest_v[f] = decoded[member][f]
  end
end

-- The features are derived from the sums by the caller, for a whole batch at once
-- (features/sums.py): in this script they took a sixth of a call, one value at a time.
local latest = {}
for v = 1, N_VITALS do
  local value = latest_v[v]
  if value == nil then value = NAN end
  latest[v] = value
end

-- NEWS2 takes each parameter's latest value observed at most `lookback` before as_of.
local since = as_of - lookback
local function recent(f)
  return latest_t[f] ~= nil and latest_t[f] >= since
end
local function news_value(f)
  return recent(f) and string.format('%.17g', latest_v[f]) or false
end
local spo2_scale = false
if recent(3) then
  local scale = decoded[latest_m[3]][9]
  spo2_scale = scale and string.format('%.17g', scale) or false
end
local news = {
  news_value(2),
  news_value(3),
  spo2_scale,
  news_value(10),
  news_value(5),
  news_value(1),
  recent(11) and latest_v[11] or false,
  news_value(4),
}

local alert = redis.call('HMGET', KEYS[4], 'state', 'outbox')
local modal = redis.call('HMGET', KEYS[5], 'notes', 'imaging')

return {{us(as_of), accepted, duplicates, dropped, S[6]},
  packed_sums or struct.pack(SUMS_FORMAT, unpack(S)),
  struct.pack('<' .. string.rep('d', N_VITALS), unpack(latest)), news, alert, modal}
