// The RocksDB C API from Debian's librocksdb-dev (RocksDB 7.8 on Debian 12).
#include <rocksdb/c.h>
