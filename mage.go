//go:build ignore

// Zero-install entry point: `go run mage.go <target>` builds and runs the
// targets of magefile.go without a mage binary on the machine
// (`go run mage.go -l` lists them).
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
