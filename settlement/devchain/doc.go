// Package devchain is the embedded settlement chain: the rules of package
// contract in blocks, persisted with bbolt and served over gRPC.
package devchain
