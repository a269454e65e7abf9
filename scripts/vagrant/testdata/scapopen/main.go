// Command scapopen stands in for libs' scap-open in the tests of the
// Vagrant cell runner: same options, same summary line. It needs /proc in
// its root (as the real one does) and decides its outcome from the driver
// file it is given, so each test cell can ask for a different one.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		fmt.Println("error: /proc is not mounted")
		os.Exit(1)
	}
	num := 0
	mode, probe := "", ""
	for i := 1; i < len(os.Args); i++ {
		switch os.Args[i] {
		case "--kmod", "--modern_bpf":
			mode = os.Args[i]
		case "--bpf":
			mode = "--bpf"
			i++
			probe = os.Args[i]
		case "--num_events":
			i++
			num, _ = strconv.Atoi(os.Args[i])
		}
	}
	fmt.Println("[SCAP-OPEN]: Hello!")
	behaviour := ""
	if probe != "" {
		b, err := os.ReadFile(probe)
		if err != nil {
			fmt.Printf("error opening the probe %s: %v\n", probe, err)
			os.Exit(1)
		}
		behaviour = strings.TrimSpace(string(b))
	}
	switch {
	case behaviour == "reject":
		fmt.Println("libbpf: prog 'sys_enter': BPF program load failed: Permission denied")
		fmt.Println("error: unable to load the BPF probe")
		os.Exit(1)
	case behaviour == "few":
		num = 3
	case behaviour == "unsupported":
		fmt.Println("this engine is not supported on this kernel")
		os.Exit(95)
	}
	fmt.Printf("* %s\n", mode)
	fmt.Printf("Events correctly captured (SCAP_SUCCESS): %d\n", num)
	fmt.Println("Seen by driver: 1000")
}
