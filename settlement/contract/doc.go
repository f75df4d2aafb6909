// Package contract holds the channel contract's rules as a pure,
// deterministic state machine over chain state: channels, stakes, the shared
// staking pool, leader claims, proposals, votes and punishment.
package contract
