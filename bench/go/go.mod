module sysgate-bench

go 1.19

require sysgate v0.0.0

// The SDK from this source tree: nothing is fetched.
replace sysgate => ../../sdk/go
