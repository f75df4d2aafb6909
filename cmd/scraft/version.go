package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set by the build (-ldflags "-X main.version=..."); otherwise the module
// version from the build info, or "dev".
var version = "dev"

func init() {
	rootCmd.Version = versionString()
	rootCmd.SetVersionTemplate("scraft {{.Version}}\n")
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the scraft version, VCS revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "scraft %s\n", versionString())
			return nil
		},
	}
}

// versionString is the version, then what the build info records: the VCS
// revision (marked when the tree had local changes) and the Go version.
// `scraft version` and `scraft --version` print it.
func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += fmt.Sprintf(" (revision %s%s)", rev, modified)
	}
	return v + " " + bi.GoVersion
}
