package main

import (
	"strings"
	"testing"
)

func TestUnknownFlagSuggests(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "--admn", "x"}, "did you mean --admin?"},
		{[]string{"keygen", "--ot", "x"}, "did you mean --out?"},
		{[]string{"call", "--chanel=0x00"}, "did you mean --channel?"},
		{[]string{"keygen", "--zzzzzz"}, "(see scraft keygen --help)"},
	} {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scraft %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"admin", "admin", 0}, {"admn", "admin", 1}, {"chanel", "channel", 1}, {"kitten", "sitting", 3}} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}
