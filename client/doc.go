// Package client is the Go SDK applications use to reach a channel through
// any of its nodes.
package client
