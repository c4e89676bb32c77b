import ArgumentParser

/// `bifrost-map`: the replicated map server (`serve`) and its command-line client.
///
/// Exit codes: 0 success; 1 a missing key (`get`, `del`), a compare-and-swap that did not swap, or a cluster
/// without a leader (`status`); 2 an operation error (printed as `error: <code>: <message>` on stderr); 64 a
/// usage error.
@main
struct BifrostMapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bifrost-map",
        abstract: "A replicated map on Raft: run a node with `serve`, use the cluster with the other commands.",
        discussion: """
            Values are UTF-8 text on the command line. A missing key prints nothing and exits 1.
            Errors print `error: <code>: <message>` on stderr and exit 2.
            """,
        subcommands: [
            Serve.self, Get.self, SetCommand.self, Delete.self, CompareAndSwap.self, ListCommand.self, Watch.self,
            Status.self,
        ]
    )
}
