package transport

import "google.golang.org/grpc"

// misbehave is nil in every ordinary build. A binary built with the
// scraft_misbehave tag (misbehave_tag.go) sets it from SCRAFT_MISBEHAVE,
// for end-to-end tests of a node its peers cannot reach: NewServer calls
// it once, before the gRPC server is built, and serves with the options
// it returns.
var misbehave func(s *Server) []grpc.ServerOption
