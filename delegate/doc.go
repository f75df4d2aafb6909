// Package delegate is the policy of channels with more than five members:
// which members are the five candidates, how many delegators each may hold,
// which candidate each other member delegates to, how a candidate's vote
// counts for its silent delegators, and which peer a member routes through
// to reach the leader.
//
// Everything here is a pure function of its arguments: no clock, no
// randomness, no map iterated for output. The chain's rules and the nodes
// call the same functions, so two honest members given the same records
// always reach the same answer. DESIGN.md gives the rules and why.
package delegate
