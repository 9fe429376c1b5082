-- Store a patient's latest score of one modality (notes or imaging) unless a newer one is
-- already stored: a late or redelivered event never replaces a newer score.
-- KEYS[1] modal hash    field -> "<observed_at us>|<ModalityScore JSON>"
-- ARGV[1] field, ARGV[2] observed_at (us, integer string), ARGV[3] JSON, ARGV[4] ttl ms
-- Returns 1 when stored, 0 when a newer or equal score was kept.

local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local at = tonumber(string.match(current, '^(%d+)|'))
  if at and at >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
