#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// TCP ports on 127.0.0.1 that are free right now: each is bound to port 0 and released together at
/// the end, so the `count` ports differ. For local networks whose raft addresses must be known before
/// the nodes start (benchmarks, tests); another process may still take one in between.
public enum LoopbackPorts {
    public static func free(_ count: Int) -> [Int] {
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        return (0..<count).map { _ in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            fds.append(fd)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &a) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { s in
                    _ = bind(fd, s, len)
                    _ = getsockname(fd, s, &len)
                }
            }
            return Int(UInt16(bigEndian: a.sin_port))
        }
    }
}
