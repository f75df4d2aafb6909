// Package cluster runs one Raft group per channel a node hosts, follows the
// settlement chain's choice of leader, and drives the fsm.
package cluster
