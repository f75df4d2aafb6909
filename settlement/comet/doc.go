// Package comet runs the channel contract's rules as a CometBFT application:
// a settlement chain kept by a set of validators, none of which decides
// alone. Each validator runs CometBFT in process with the App, and serves
// the same gRPC API as the development chain (settlement/devchain), so
// devchain.Dial and every settlement.Chain user work unchanged.
package comet
