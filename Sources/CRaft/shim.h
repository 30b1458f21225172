// Canonical's libraft 0.15 (Debian libraft-dev) and libuv 1.44 (libuv1-dev): the Raft engine under
// the raft ordering service (Sources/LedgerConsensus). The fixture is its deterministic in-memory
// cluster, used by the unit tests.
#include <uv.h>
#include <raft.h>
#include <raft/uv.h>
#include <raft/fixture.h>
