package client

import (
	"fmt"
	"net"
	"strconv"
)

// checkNodeAddr refuses a node address that is not host:port. gRPC would
// take "localhost" as a name to resolve and dial its port 443, and report
// a refused connection there instead of the missing port.
func checkNodeAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("client: node address %q: want host:port (for example 127.0.0.1:7500): %v", a, err)
	}
	if host == "" {
		// ":7500" means this machine, as for a listener.
		return nil
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("client: node address %q: port %q is not a number from 1 to 65535", a, port)
	}
	return nil
}
