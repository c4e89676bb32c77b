import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `@StateMachine` on a struct: the `RaftStateMachine` conformance (dispatch, snapshot), the function ids, and a
/// typed client, from the struct's `@Command` and `@Query` methods and its `Subscription` properties.
///
/// Diagnostics are reported by the extension role only (the member and peer roles see the same declaration).
public struct StateMachineMacro: ExtensionMacro, MemberMacro, PeerMacro {
    public static func expansion(
        of node: AttributeSyntax,
        attachedTo declaration: some DeclGroupSyntax,
        providingExtensionsOf type: some TypeSyntaxProtocol,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [ExtensionDeclSyntax] {
        guard let model = StateMachineModel(declaration, attribute: node) else {
            context.diagnose(Diagnostic(node: Syntax(node), message: StateMachineDiagnostic.notAStruct))
            return []
        }
        for diagnostic in model.diagnostics { context.diagnose(diagnostic) }
        guard model.isUsable else { return [] }
        let conformance = protocols.isEmpty ? "" : ": RaftStateMachine"
        let decl: DeclSyntax = """
            extension \(raw: type.trimmedDescription)\(raw: conformance) {
            \(raw: model.extensionBody())
            }
            """
        guard let ext = decl.as(ExtensionDeclSyntax.self) else { return [] }
        return [ext]
    }

    public static func expansion(
        of node: AttributeSyntax,
        providingMembersOf declaration: some DeclGroupSyntax,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        guard let model = StateMachineModel(declaration, attribute: node), model.isUsable else { return [] }
        return [DeclSyntax(stringLiteral: model.client())]
    }

    public static func expansion(
        of node: AttributeSyntax,
        providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        guard let group = declaration.asProtocol((any DeclGroupSyntax).self),
            let model = StateMachineModel(group, attribute: node), model.isUsable
        else { return [] }
        return [
            """
            /// The typed client of the `\(raw: model.name)` state machine (see `\(raw: model.name).Client`).
            \(raw: model.access)typealias \(raw: model.name)Client = \(raw: model.name).Client
            """
        ]
    }
}

/// `@Command`: a marker read by `@StateMachine`; expands to nothing.
public struct CommandMacro: PeerMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        checkMarker(node, "@Command", on: declaration, in: context)
        return []
    }
}

/// `@Query`: a marker read by `@StateMachine`; expands to nothing.
public struct QueryMacro: PeerMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        checkMarker(node, "@Query", on: declaration, in: context)
        return []
    }
}

/// A marker belongs on a method of a `@StateMachine` struct (the struct checks the method itself).
private func checkMarker(
    _ node: AttributeSyntax, _ marker: String, on declaration: some DeclSyntaxProtocol,
    in context: some MacroExpansionContext
) {
    guard declaration.is(FunctionDeclSyntax.self) else {
        context.diagnose(Diagnostic(node: Syntax(node), message: StateMachineDiagnostic.markerNotOnMethod(marker)))
        return
    }
    let enclosing = context.lexicalContext.first
    let isStateMachine =
        enclosing?.as(StructDeclSyntax.self)?.attributes.contains { element in
            guard case .attribute(let attribute) = element else { return false }
            return attributeName(attribute) == "StateMachine"
        } ?? false
    if !isStateMachine {
        context.diagnose(Diagnostic(node: Syntax(node), message: StateMachineDiagnostic.markerOutside(marker)))
    }
}

/// The last component of an attribute's name (`BifrostMacros.Command` is `Command`).
private func attributeName(_ attribute: AttributeSyntax) -> String {
    let name = attribute.attributeName.trimmedDescription
    return name.split(separator: ".").last.map(String.init) ?? name
}

/// The text of a string literal without interpolations or escapes, or nil.
private func plainText(of literal: StringLiteralExprSyntax) -> String? {
    var text = ""
    for segment in literal.segments {
        guard let plain = segment.as(StringSegmentSyntax.self), !plain.content.text.contains("\\") else { return nil }
        text += plain.content.text
    }
    return text
}

/// The last component of a type's name (`BifrostRaft.RaftApplyContext` is `RaftApplyContext`).
private func baseTypeName(_ type: String) -> String {
    type.split(separator: ".").last.map(String.init) ?? type
}

// MARK: - The model

/// What `@StateMachine` reads from the struct.
struct StateMachineModel {
    struct Parameter {
        var label: String?  // nil for `_`
        var name: String
        var field: String
        var type: String
        var defaultValue: String?
    }

    enum Throwing { case none, stateMachineError, other }

    struct Function {
        var isCommand: Bool
        var name: String
        var parameters: [Parameter]
        /// The label the apply context is passed with (`""` for none), if the command takes it.
        var contextLabel: String?
        var returnType: String?
        var throwing: Throwing
        var selector: String
        var id: UInt64
        var argumentsType: String
    }

    struct Subscription {
        var name: String
        var pattern: String?  // nil for NoPattern
        var payload: String
    }

    var name: String
    var access: String
    var functions: [Function] = []
    var subscriptions: [Subscription] = []
    var generatesSnapshot = false
    var diagnostics: [Diagnostic] = []
    /// Whether code is generated: only when nothing is wrong (half a state machine would only add errors).
    var isUsable: Bool { diagnostics.isEmpty }

    init?(_ declaration: some DeclGroupSyntax, attribute: AttributeSyntax) {
        guard let structDecl = declaration.as(StructDeclSyntax.self) else { return nil }
        name = structDecl.name.text
        access = Self.accessPrefix(of: structDecl.modifiers)
        if let generics = structDecl.genericParameterClause {
            diagnose(generics, .genericStruct)
            return
        }
        var seen: [UInt64: String] = [:]
        var baseNames: [String: Int] = [:]
        var snapshotDecl: FunctionDeclSyntax?
        var restoreDecl: FunctionDeclSyntax?
        for member in structDecl.memberBlock.members {
            if let variable = member.decl.as(VariableDeclSyntax.self) {
                readSubscription(variable)
                continue
            }
            guard let function = member.decl.as(FunctionDeclSyntax.self) else { continue }
            let markers = function.attributes.compactMap { element -> String? in
                guard case .attribute(let attribute) = element else { return nil }
                let name = attributeName(attribute)
                return name == "Command" || name == "Query" ? name : nil
            }
            if markers.isEmpty {
                let labels = function.signature.parameterClause.parameters.map(\.firstName.text)
                if function.name.text == "snapshot", labels.isEmpty { snapshotDecl = function }
                if function.name.text == "restore", labels == ["from"] { restoreDecl = function }
                continue
            }
            if Set(markers).count > 1 {
                diagnose(function.name, .bothMarkers)
                continue
            }
            guard var method = readFunction(function, isCommand: markers[0] == "Command") else { continue }
            if let other = seen[method.id] {
                diagnose(
                    function.name,
                    other == method.selector ? .duplicate(method.selector) : .collision(method.selector, other))
                continue
            }
            seen[method.id] = method.selector
            let base = method.name.prefix(1).uppercased() + method.name.dropFirst()
            let count = (baseNames[base] ?? 0) + 1
            baseNames[base] = count
            method.argumentsType = base + (count == 1 ? "" : "\(count)") + "Arguments"
            functions.append(method)
        }
        for subscription in subscriptions where functions.contains(where: { $0.name == subscription.name }) {
            if let variable = structDecl.memberBlock.members.lazy.compactMap({ $0.decl.as(VariableDeclSyntax.self) })
                .first(where: { $0.bindings.first?.pattern.trimmedDescription == subscription.name })
            {
                diagnose(variable, .subscriptionClash(subscription.name))
            }
        }
        switch (snapshotDecl, restoreDecl) {
        case (.some, .some): generatesSnapshot = false
        case (.some(let only), .none), (.none, .some(let only)):
            diagnose(only.name, .halfSnapshot)
        case (.none, .none):
            let inherited = Set(
                structDecl.inheritanceClause?.inheritedTypes.map { baseTypeName($0.type.trimmedDescription) } ?? [])
            if inherited.contains("Codable") || inherited.isSuperset(of: ["Encodable", "Decodable"]) {
                generatesSnapshot = true
            } else {
                diagnose(structDecl.name, .notCodable(name))
            }
        }
    }

    private mutating func diagnose(_ node: some SyntaxProtocol, _ message: StateMachineDiagnostic) {
        diagnostics.append(Diagnostic(node: Syntax(node), message: message))
    }

    private mutating func readFunction(_ function: FunctionDeclSyntax, isCommand: Bool) -> Function? {
        var valid = true
        let modifiers = function.modifiers.map(\.name.tokenKind)
        if modifiers.contains(.keyword(.static)) || modifiers.contains(.keyword(.class)) {
            diagnose(function.name, .staticMethod)
            valid = false
        }
        if !isCommand, let mutating = function.modifiers.first(where: { $0.name.tokenKind == .keyword(.mutating) }) {
            diagnostics.append(
                Diagnostic(
                    node: Syntax(mutating), message: StateMachineDiagnostic.mutatingQuery,
                    fixIt: FixIt(
                        message: StateMachineFixIt.removeMutating,
                        changes: [
                            .replace(
                                oldNode: Syntax(function.modifiers),
                                newNode: Syntax(function.modifiers.filter { $0.name.tokenKind != .keyword(.mutating) })
                            )
                        ]
                    )))
            valid = false
        }
        let effects = function.signature.effectSpecifiers
        if let async = effects?.asyncSpecifier {
            diagnose(async, .asyncMethod)
            valid = false
        }
        if let generics = function.genericParameterClause {
            diagnose(generics, .genericMethod)
            valid = false
        }
        let declared = Array(function.signature.parameterClause.parameters)
        var parameters: [Parameter] = []
        var contextLabel: String?
        for (position, parameter) in declared.enumerated() {
            let first = parameter.firstName.text
            let name = parameter.secondName?.text ?? first
            if let ellipsis = parameter.ellipsis {
                diagnose(ellipsis, .variadic(name))
                valid = false
                continue
            }
            if let attributed = parameter.type.as(AttributedTypeSyntax.self),
                attributed.specifiers.contains(where: { $0.trimmedDescription.hasPrefix("inout") })
            {
                diagnose(parameter.type, .inoutParameter(name))
                valid = false
                continue
            }
            if baseTypeName(parameter.type.trimmedDescription) == "RaftApplyContext" {
                if !isCommand {
                    diagnose(parameter, .contextInQuery)
                    valid = false
                } else if position != declared.count - 1 {
                    diagnose(parameter, .contextNotLast)
                    valid = false
                } else {
                    contextLabel = first == "_" ? "" : "\(first): "
                }
                continue
            }
            if name == "_" {
                diagnose(parameter, .unnamedParameter)
                valid = false
                continue
            }
            if !isCommand, first == "consistency" {
                diagnose(parameter, .consistencyLabel)
                valid = false
                continue
            }
            parameters.append(
                Parameter(
                    label: first == "_" ? nil : first, name: name, field: name,
                    type: parameter.type.trimmedDescription,
                    defaultValue: parameter.defaultValue?.value.trimmedDescription))
        }
        guard valid else { return nil }
        let returned = function.signature.returnClause?.type.trimmedDescription
        let throwing: Throwing
        if let clause = effects?.throwsClause {
            throwing =
                clause.type.map { baseTypeName($0.trimmedDescription) == "RaftStateMachineError" } == true
                ? .stateMachineError : .other
        } else {
            throwing = .none
        }
        let labels = declared.map { $0.firstName.text + ":" }.joined()
        let selector = "\(name).\(function.name.text)(\(labels))"
        return Function(
            isCommand: isCommand, name: function.name.text, parameters: parameters, contextLabel: contextLabel,
            returnType: (returned == nil || returned == "Void" || returned == "()") ? nil : returned,
            throwing: throwing, selector: selector, id: fnv1a(selector), argumentsType: "")
    }

    /// Reads `static let x = Subscription<P, T>("x")` (or `static let x: Subscription<P, T> = .init("x")`).
    private mutating func readSubscription(_ variable: VariableDeclSyntax) {
        guard variable.modifiers.contains(where: { $0.name.tokenKind == .keyword(.static) }),
            variable.bindings.count == 1, let binding = variable.bindings.first,
            let property = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier.text,
            let call = binding.initializer?.value.as(FunctionCallExprSyntax.self)
        else { return }
        var generics: GenericArgumentListSyntax?
        if let specialized = call.calledExpression.as(GenericSpecializationExprSyntax.self),
            baseTypeName(specialized.expression.trimmedDescription) == "Subscription"
        {
            generics = specialized.genericArgumentClause.arguments
        } else if let annotated = binding.typeAnnotation?.type.as(IdentifierTypeSyntax.self),
            annotated.name.text == "Subscription"
        {
            generics = annotated.genericArgumentClause?.arguments
        }
        guard let generics, generics.count == 2 else { return }
        let types = generics.map { $0.argument.trimmedDescription }
        let literal = call.arguments.first?.expression.as(StringLiteralExprSyntax.self)
        guard call.arguments.count == 1, let literal, let value = plainText(of: literal) else {
            diagnose(call, .subscriptionNameNotLiteral(property))
            return
        }
        guard value == property else {
            diagnose(literal, .subscriptionName(property, value))
            return
        }
        subscriptions.append(
            Subscription(
                name: property, pattern: baseTypeName(types[0]) == "NoPattern" ? nil : types[0], payload: types[1]))
    }

    private static func accessPrefix(of modifiers: DeclModifierListSyntax) -> String {
        for modifier in modifiers {
            switch modifier.name.tokenKind {
            case .keyword(.public): return "public "
            case .keyword(.package): return "package "
            default: continue
            }
        }
        return ""
    }

    // MARK: Generation

    /// The members of the `RaftStateMachine` extension.
    func extensionBody() -> String {
        let ids = functions.map { "        \"\($0.selector)\": \(hex($0.id))," }.joined(separator: "\n")
        let kinds = subscriptions.map { "        \"\($0.name)\": \(hex(fnv1a($0.name)))," }.joined(separator: "\n")
        var parts: [String] = [
            """
                /// The ids of the commands and queries of `\(name)`, by full name (generated by `@StateMachine`).
                \(access)static let functionIDs: [String: UInt64] = \(ids.isEmpty ? "[:]" : "[\n" + ids + "\n    ]")
            """,
            """
                /// The kinds of the subscriptions of `\(name)`, by name (generated by `@StateMachine`).
                \(access)static let subscriptionKinds: [String: UInt64] = \(kinds.isEmpty ? "[:]" : "[\n" + kinds + "\n    ]")
            """,
        ]
        let commands = functions.filter(\.isCommand).map { dispatchCase($0) }
        parts.append(
            """
                /// Applies a `@Command` of `\(name)`: decodes the argument, runs the method, encodes its result
                /// (generated by `@StateMachine`).
                \(access)mutating func apply(
                    function: UInt64, argument: [UInt8], context: RaftApplyContext
                ) throws(RaftStateMachineError) -> [UInt8] {
                    switch function {
            \(commands.map { $0 + "\n" }.joined())        default:
                        throw StateMachineSupport.functionNotFound(function, in: "\(name)", kind: "command")
                    }
                }
            """)
        let queries = functions.filter { !$0.isCommand }.map { dispatchCase($0) }
        parts.append(
            """
                /// Runs a `@Query` of `\(name)`: decodes the argument, runs the method, encodes its result
                /// (generated by `@StateMachine`).
                \(access)func query(function: UInt64, argument: [UInt8]) throws(RaftStateMachineError) -> [UInt8] {
                    switch function {
            \(queries.map { $0 + "\n" }.joined())        default:
                        throw StateMachineSupport.functionNotFound(function, in: "\(name)", kind: "query")
                    }
                }
            """)
        if generatesSnapshot {
            parts.append(
                """
                    /// The whole state, encoded with `WireEncoder` (generated by `@StateMachine`).
                    \(access)func snapshot() throws(RaftStateMachineError) -> [UInt8] {
                        try StateMachineSupport.snapshot(of: self)
                    }
                """)
            parts.append(
                """
                    /// Replaces the whole state with the one `snapshot()` encoded (generated by `@StateMachine`).
                    \(access)mutating func restore(from snapshot: [UInt8]) throws(RaftStateMachineError) {
                        self = try StateMachineSupport.restore(Self.self, from: snapshot)
                    }
                """)
        }
        return parts.joined(separator: "\n\n")
    }

    /// One `case` of `apply` or `query`.
    private func dispatchCase(_ function: Function) -> String {
        var lines: [String] = []
        var arguments = function.parameters.map { ($0.label.map { "\($0): " } ?? "") + "arguments.\($0.field)" }
        if function.parameters.isEmpty {
            lines.append("try StateMachineSupport.expectNoArgument(argument, function: \"\(function.selector)\")")
        } else {
            lines.append(
                "let arguments = try Client.\(function.argumentsType).fromWire(argument, "
                    + "function: \"\(function.selector)\")")
        }
        if let label = function.contextLabel { arguments.append(label + "context") }
        let call = "self.\(function.name)(\(arguments.joined(separator: ", ")))"
        switch (function.throwing, function.returnType) {
        case (.none, nil): lines.append(call)
        case (.none, .some): lines.append("let result = \(call)")
        case (.stateMachineError, nil): lines.append("try \(call)")
        case (.stateMachineError, .some): lines.append("let result = try \(call)")
        case (.other, let type):
            if let type { lines.append("let result: \(type)") }
            lines.append("do {")
            lines.append("    \(type == nil ? "" : "result = ")try \(call)")
            lines.append("} catch {")
            lines.append("    throw StateMachineSupport.stateMachineError(error)")
            lines.append("}")
        }
        if function.returnType == nil {
            lines.append("return []")
        } else {
            lines.append("return try StateMachineSupport.encodeResult(result, function: \"\(function.selector)\")")
        }
        return "        case \(hex(function.id)):  // \(function.selector)\n"
            + lines.map { "            " + $0 }.joined(separator: "\n")
    }

    /// The nested `Client` struct, with the argument structs.
    func client() -> String {
        var members: [String] = [
            """
                /// The client of the Raft group the state machine runs in.
                \(access)let raft: RaftClient
                /// The id the state machine is registered under on the group's nodes.
                \(access)let stateMachine: UInt64

                /// Creates a client of the `\(name)` registered as `stateMachine` in the group `raft` talks to.
                \(access)init(raft: RaftClient, stateMachine: UInt64) {
                    self.raft = raft
                    self.stateMachine = stateMachine
                }
            """
        ]
        members += functions.map { clientMethod($0) }
        members += subscriptions.map { subscription in
            if let pattern = subscription.pattern {
                return """
                        /// Subscribes to the `\(subscription.name)` events whose pattern equals `pattern` (`nil`: all of them).
                        \(access)func \(subscription.name)(_ pattern: \(pattern)? = nil) async throws(RaftClientError) -> RaftTypedSubscription<\(subscription.payload)> {
                            try await self.raft.subscribe(\(name).\(subscription.name), stateMachine: self.stateMachine, pattern: pattern)
                        }
                    """
            }
            return """
                    /// Subscribes to the `\(subscription.name)` events.
                    \(access)func \(subscription.name)() async throws(RaftClientError) -> RaftTypedSubscription<\(subscription.payload)> {
                        try await self.raft.subscribe(\(name).\(subscription.name), stateMachine: self.stateMachine, pattern: nil)
                    }
                """
        }
        members += functions.filter { !$0.parameters.isEmpty }.map { function in
            // Keyed like synthesized `Codable` (a field per parameter, `nil` left out), but each field goes through
            // `StateMachineSupport`, so a parameter type may be `Codable` or only `WireCodable`.
            let parameters = function.parameters
            let fields = parameters.map { "        var \($0.field): \($0.type)" }.joined(separator: "\n")
            let initParameters = parameters.map { "\($0.field): \($0.type)" }.joined(separator: ", ")
            let assignments = parameters.map { "            self.\($0.field) = \($0.field)" }.joined(separator: "\n")
            let keys = parameters.map { "`\($0.field)`" }.joined(separator: ", ")
            let decodes = parameters.map {
                "            self.\($0.field) = try StateMachineSupport.decodeField(\($0.type).self, from: container, "
                    + "forKey: .`\($0.field)`)"
            }.joined(separator: "\n")
            let encodes = parameters.map {
                "            try StateMachineSupport.encodeField(self.\($0.field), into: &container, forKey: .`\($0.field)`)"
            }.joined(separator: "\n")
            let writes = parameters.map {
                "                try StateMachineSupport.writeField(self.\($0.field), named: \"\($0.field)\", into: &writer)"
            }.joined(separator: "\n")
            let reads = parameters.map {
                "                    \($0.field): try fields.read((\($0.type)).self, named: \"\($0.field)\")"
            }.joined(separator: ",\n")
            return """
                    /// The argument of `\(function.selector)`.
                    fileprivate struct \(function.argumentsType): Codable {
                \(fields)

                        init(\(initParameters)) {
                \(assignments)
                        }

                        enum CodingKeys: String, CodingKey {
                            case \(keys)
                        }

                        init(from decoder: any Decoder) throws {
                            let container = try decoder.container(keyedBy: CodingKeys.self)
                \(decodes)
                        }

                        func encode(to encoder: any Encoder) throws {
                            var container = encoder.container(keyedBy: CodingKeys.self)
                \(encodes)
                        }

                        /// The argument's bytes: the same as `WireEncoder` writes for it, without an `Encoder`.
                        func wireArgument(function: String) throws(RaftClientError) -> [UInt8] {
                            try StateMachineSupport.encodeArgument(function: function) { writer in
                \(writes)
                            }
                        }

                        /// Decodes the bytes `wireArgument` (or `WireEncoder`) wrote, without a `Decoder`.
                        static func fromWire(_ argument: [UInt8], function: String) throws(RaftStateMachineError) -> Self {
                            try StateMachineSupport.decodeArgument(from: argument, function: function) { fields in
                                Self(
                \(reads)
                                )
                            }
                        }
                    }
                """
        }
        let body = members.joined(separator: "\n\n")
        return """
            /// The typed client of the `\(name)` state machine, generated by `@StateMachine`: one method per command,
            /// query and subscription, through a `RaftClient`.
            \(access)struct Client: Sendable {
            \(body)
            }
            """
    }

    private func clientMethod(_ function: Function) -> String {
        var signature = function.parameters.map { parameter in
            let label = parameter.label ?? "_"
            let head =
                label == parameter.name
                ? "\(label): \(parameter.type)" : "\(label) \(parameter.name): \(parameter.type)"
            return head + (parameter.defaultValue.map { " = \($0)" } ?? "")
        }
        if !function.isCommand { signature.append("consistency: ReadConsistency = .linearizable") }
        let result = function.returnType.map { " -> \($0)" } ?? ""
        let argument: String
        if function.parameters.isEmpty {
            argument = "[]"
        } else {
            let fields = function.parameters.map { "\($0.field): \($0.name)" }.joined(separator: ", ")
            argument =
                "\(function.argumentsType)(\(fields)).wireArgument(function: \"\(function.selector)\")"
        }
        let call =
            function.isCommand
            ? [
                "self.raft.command(", "    stateMachine: self.stateMachine, function: \(hex(function.id)),",
                "    argument: \(argument)", ")",
            ]
            : [
                "self.raft.query(", "    stateMachine: self.stateMachine, function: \(hex(function.id)),",
                "    argument: \(argument),", "    consistency: consistency", ")",
            ]
        var lines: [String]
        if let type = function.returnType {
            lines = ["return try StateMachineSupport.decodeResult(", "    \(type).self,", "    from: await " + call[0]]
            lines += call.dropFirst().dropLast().map { "    " + $0 }
            lines += ["    ).value,", "    function: \"\(function.selector)\"", ")"]
        } else {
            lines = ["_ = try await " + call[0]] + call.dropFirst()
        }
        let body = lines.joined(separator: "\n        ")
        let doc =
            function.isCommand
            ? "/// Runs the command `\(function.selector)` through the leader (exactly once with the client's session)."
            : "/// Runs the query `\(function.selector)` at `consistency`."
        return """
                \(doc)
                \(access)func \(function.name)(\(signature.joined(separator: ", "))) async throws(RaftClientError)\(result) {
                    \(body)
                }
            """
    }
}

// MARK: - Diagnostics

enum StateMachineDiagnostic: DiagnosticMessage {
    case notAStruct
    case genericStruct
    case bothMarkers
    case staticMethod
    case mutatingQuery
    case asyncMethod
    case genericMethod
    case variadic(String)
    case inoutParameter(String)
    case contextInQuery
    case contextNotLast
    case consistencyLabel
    case unnamedParameter
    case duplicate(String)
    case collision(String, String)
    case halfSnapshot
    case notCodable(String)
    case subscriptionName(String, String)
    case subscriptionNameNotLiteral(String)
    case subscriptionClash(String)
    case markerNotOnMethod(String)
    case markerOutside(String)

    var message: String {
        switch self {
        case .notAStruct: "@StateMachine applies to a struct"
        case .genericStruct: "a @StateMachine struct cannot be generic"
        case .bothMarkers: "a method cannot be both a @Command and a @Query"
        case .staticMethod: "a @Command or @Query must be an instance method"
        case .mutatingQuery: "a @Query cannot be 'mutating': a query must not change the state"
        case .asyncMethod: "a @Command or @Query cannot be 'async': a state machine runs synchronously, in log order"
        case .genericMethod: "a @Command or @Query cannot be generic"
        case .variadic(let name): "parameter '\(name)' cannot be variadic"
        case .inoutParameter(let name): "parameter '\(name)' cannot be 'inout'"
        case .contextInQuery: "a @Query has no apply context; only a @Command can take a 'RaftApplyContext'"
        case .contextNotLast: "the 'RaftApplyContext' parameter must be the last parameter"
        case .unnamedParameter:
            "a parameter of a @Command or @Query needs a name (its argument field is named after it)"
        case .consistencyLabel: "a @Query cannot have a parameter labelled 'consistency' (its client method adds one)"
        case .duplicate(let selector): "'\(selector)' is declared twice (overloads share a function id); rename one"
        case .collision(let a, let b): "the function ids of '\(a)' and '\(b)' collide; rename one"
        case .halfSnapshot: "implement both 'snapshot()' and 'restore(from:)', or neither"
        case .notCodable(let name):
            "'\(name)' must conform to 'Codable' (for the generated snapshot) or implement 'snapshot()' and "
                + "'restore(from:)'"
        case .subscriptionName(let property, let name):
            "subscription '\(property)' is named \"\(name)\"; its name must be \"\(property)\""
        case .subscriptionNameNotLiteral(let property):
            "the name of subscription '\(property)' must be a string literal"
        case .subscriptionClash(let name): "subscription '\(name)' has the name of a @Command or @Query; rename one"
        case .markerNotOnMethod(let marker): "\(marker) applies to a method"
        case .markerOutside(let marker): "\(marker) has no effect outside a @StateMachine struct"
        }
    }

    var diagnosticID: MessageID { MessageID(domain: "BifrostMacros.StateMachine", id: "\(self)") }
    var severity: DiagnosticSeverity { .error }
}

enum StateMachineFixIt: FixItMessage {
    case removeMutating

    var message: String { "remove 'mutating'" }
    var fixItID: MessageID { MessageID(domain: "BifrostMacros.StateMachine", id: "removeMutating") }
}
