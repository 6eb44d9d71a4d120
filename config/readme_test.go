package config

import (
	"os"
	"regexp"
	"testing"
)

// The settings shown in the README load as they are: a reader may copy them.
func TestREADMESettingsLoad(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) == 0 {
		t.Fatal("the README shows no settings")
	}
	for i, blk := range blocks {
		if _, err := Parse(blk[1], "README.md block "+string(rune('1'+i))); err != nil {
			t.Errorf("%v", err)
		}
	}
}
