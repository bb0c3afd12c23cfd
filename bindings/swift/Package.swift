// swift-tools-version:5.9
// The Swift binding of parley: a thin layer over the stable C ABI (include/parley/parley.h).
//
// libparley is found through pkg-config (`parley`, installed as lib/pkgconfig/parley.pc), or
// through explicit flags:
//   swift build -Xcc -I<prefix>/include -Xlinker -L<prefix>/lib -Xlinker -rpath -Xlinker <prefix>/lib
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("StrictConcurrency")]

let package = Package(
    name: "Parley",
    products: [
        .library(name: "Parley", targets: ["Parley"]),
        .executable(name: "parley-swift-example", targets: ["parley-swift-example"]),
    ],
    targets: [
        .systemLibrary(
            name: "CParley",
            path: "Sources/CParley",
            pkgConfig: "parley"
        ),
        .target(
            name: "Parley",
            dependencies: ["CParley"],
            path: "Sources/Parley",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "parley-swift-example",
            dependencies: ["Parley"],
            path: "Sources/parley-swift-example",
            swiftSettings: strict
        ),
        .testTarget(
            name: "ParleyTests",
            dependencies: ["Parley", "CParley"],
            path: "Tests/ParleyTests",
            swiftSettings: strict
        ),
    ]
)
