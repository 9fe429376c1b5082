-- Store one scoring of a patient: latest score and features, the 24 h history, and the
-- alert state with the alerts still to publish (FeatureStore.save_scores). One call
-- instead of nine pipelined commands per patient: the client's packing and parsing of
-- those commands cost more than Redis running them.
-- KEYS[1] risk hash, KEYS[2] history zset, KEYS[3] alert hash
-- ARGV[1] ttl ms, ARGV[2] RiskScore JSON, ARGV[3] features (packed little-endian
-- doubles), ARGV[4] scored_at (us), ARGV[5] history cutoff (us; older entries go),
-- ARGV[6] alert state JSON, ARGV[7] (optional) outbox JSON

local ttl = ARGV[1]
redis.call('HSET', KEYS[1], 'risk', ARGV[2], 'values', ARGV[3])
redis.call('HDEL', KEYS[1], 'features')  -- the JSON of layout 2, if any
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[7] then
  redis.call('HSET', KEYS[3], 'state', ARGV[6], 'outbox', ARGV[7])
else
  redis.call('HSET', KEYS[3], 'state', ARGV[6])
end
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
