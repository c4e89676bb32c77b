import Synchronization

/// The routers of the servers running in this process, by their bound address. A client calling one of these
/// addresses dispatches straight into the router, skipping the socket, the framing and the codec of the frame
/// (the payload is still encoded, so the handler sees exactly what a remote call would give it).
final class RPCInProcessRegistry: Sendable {
    static let shared = RPCInProcessRegistry()

    private let routers = Mutex<[RPCAddress: RPCRouter]>([:])

    func register(_ router: RPCRouter, at address: RPCAddress) {
        routers.withLock { $0[address] = router }
    }

    func unregister(_ address: RPCAddress, router: RPCRouter) {
        routers.withLock { all in
            if all[address] === router { all[address] = nil }
        }
    }

    func router(at address: RPCAddress) -> RPCRouter? {
        routers.withLock { $0[address] }
    }
}
