//! The Lua scripts that make lease, fencing and delivery decisions atomic in Redis.
//!
//! A lease value is `<node>/<epoch>`. The epoch (the fencing token) only grows: it is the
//! room's `INCR` counter, lifted above the epoch of the stored snapshot and above the
//! epoch the caller already held, so even a Redis that lost its data never hands out an
//! epoch that was used before for a state we still know.

/// KEYS: lease, epoch counter, snapshot hash, the store's marker. ARGV: node, lease ms,
/// lowest epoch allowed, retake (1: the caller runs the room and takes back the lease a
/// restarted Redis forgot).
/// Returns `{1, epoch, state, previous owner, local list}` or `{0, current holder}`.
///
/// Without the marker this Redis lost its data and the nodes are still
/// putting back what they hold in memory: nobody may start a room afresh (its owner may
/// be about to take it back with the visits in it), only retake one: `{0, ''}`. The nodes
/// set the marker again once they had the time to (`recovery`).
pub const ACQUIRE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder then return {0, holder} end
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[4]) == 0 then return {0, ''} end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(redis.call('HGET', KEYS[3], 'epoch') or '0')
local mine = tonumber(ARGV[3])
if mine > floor then floor = mine end
if e <= floor then
  e = floor + 1
  redis.call('SET', KEYS[2], e)
end
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. e, 'PX', ARGV[2])
return {1, tostring(e), redis.call('HGET', KEYS[3], 'state') or '',
        redis.call('HGET', KEYS[3], 'node') or '', redis.call('HGET', KEYS[3], 'local') or ''}
"#;

/// KEYS: lease. ARGV: token, lease ms. 1 renewed, 0 no lease at all, -1 someone else's.
pub const RENEW: &str = r#"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then return 0 end
return -1
"#;

/// KEYS: lease, snapshot. ARGV: token, epoch, node, state, local list, snapshot ttl ms.
/// Written only while the caller's token is the lease: a deposed owner cannot overwrite
/// its successor's state. Returns 1 written, 0 no lease, -1 someone else's lease.
pub const SNAPSHOT: &str = r#"
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] then
  if not v then return 0 end
  return -1
end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'node', ARGV[3], 'state', ARGV[4], 'local', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
"#;

/// KEYS: lease, snapshot. ARGV: token, forget (1: the room is idle, drop its snapshot).
/// Gives the room up only if the caller still holds it.
pub const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
return 1
"#;

/// KEYS: presence. ARGV: node. Forget a participant's presence only if it is still ours.
pub const FORGET_PRESENCE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// KEYS: presence. ARGV: channel prefix, payload. Publish to the node the participant is
/// connected to, in one round trip. Returns receivers, or -1 when not connected anywhere.
pub const DELIVER: &str = r#"
local node = redis.call('GET', KEYS[1])
if not node then return -1 end
return redis.call('PUBLISH', ARGV[1] .. node, ARGV[2])
"#;

/// KEYS: failure counter. ARGV: window ms. Counts one failure; the first opens the window.
pub const FAIL: &str = r#"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

/// KEYS: failure counter. Returns `{failures, ms left}`, `{0, 0}` when no window is open.
pub const FAILURES: &str = r#"
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
"#;

/// KEYS: failure counter. ARGV: window ms, max. Takes a slot when fewer than `max` are
/// taken (the first opens the window): `{1, 0}`; else `{0, ms left}` and counts nothing.
/// One script, so two nodes cannot both take the last slot.
pub const TAKE: &str = r#"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[2]) then
  local left = redis.call('PTTL', KEYS[1])
  if left <= 0 then left = tonumber(ARGV[1]) end
  return {0, left}
end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {1, 0}
"#;

/// KEYS: failure counter. Hands one slot back (never below zero; the window keeps its end).
pub const GIVE_BACK: &str = r#"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"#;
