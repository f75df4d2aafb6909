// Package clientapi is the client API of a node: the one bidirectional
// gRPC stream per client (service scraft.client.v1.Client, proto/client.proto,
// generated code in clientapi/clientpb), the conversions between its wire
// messages and protocol's types, and Service, the stream server over the
// ChannelAPI interface that package cluster serves.
//
// Errors are protocol's code table: a ChannelAPI returns coded sentinels,
// the stream answers their Code, and the SDK (package client) rebuilds a
// *protocol.Error. The package imports no node internals (no raft, bbolt
// or wazero), so the SDK that speaks it stays small. CLIENT_API.md
// describes the protocol: binding, requests, subscriptions, bounds and the
// code table.
package clientapi
