package sshx

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Config says how to reach one guest: what `vagrant ssh-config` prints.
type Config struct {
	Name          string   // the Host alias (the Vagrant machine name)
	HostName      string   // address to dial
	Port          int      // TCP port
	User          string   // login user
	IdentityFiles []string // private keys, tried in order
	// StrictHostKeyChecking is false when the config says "no" (Vagrant
	// always does: its boxes regenerate host keys on first boot).
	StrictHostKeyChecking bool
}

// Addr is host:port.
func (c Config) Addr() string {
	return fmt.Sprintf("%s:%d", c.HostName, c.Port)
}

// ParseSSHConfig reads the OpenSSH client configuration that `vagrant
// ssh-config [machine...]` prints: one "Host" block per machine. It returns
// the machines in the order they appear.
func ParseSSHConfig(out []byte) ([]Config, error) {
	var hosts []Config
	var cur *Config
	sc := bufio.NewScanner(bytes.NewReader(out))
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := cutKeyword(line)
		if !ok {
			return nil, fmt.Errorf("ssh-config line %d: %q has no value", lineNo, line)
		}
		if strings.EqualFold(key, "Host") {
			hosts = append(hosts, Config{Name: val, HostName: val, Port: 22, StrictHostKeyChecking: true})
			cur = &hosts[len(hosts)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("ssh-config line %d: %s before any Host", lineNo, key)
		}
		switch strings.ToLower(key) {
		case "hostname":
			cur.HostName = val
		case "port":
			p, err := strconv.Atoi(val)
			if err != nil || p <= 0 || p > 65535 {
				return nil, fmt.Errorf("ssh-config line %d: bad port %q", lineNo, val)
			}
			cur.Port = p
		case "user":
			cur.User = val
		case "identityfile":
			cur.IdentityFiles = append(cur.IdentityFiles, val)
		case "stricthostkeychecking":
			cur.StrictHostKeyChecking = !strings.EqualFold(val, "no")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("ssh-config: no Host block in %q", truncate(string(out), 200))
	}
	for _, h := range hosts {
		if h.User == "" || len(h.IdentityFiles) == 0 {
			return nil, fmt.Errorf("ssh-config: host %s has no User or IdentityFile", h.Name)
		}
	}
	return hosts, nil
}

// cutKeyword splits `Keyword value`, `Keyword=value` or `Keyword "quoted
// value"`.
func cutKeyword(line string) (key, val string, ok bool) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, "", false
	}
	key = line[:i]
	val = strings.TrimLeft(line[i:], " \t")
	val = strings.TrimPrefix(val, "=")
	val = strings.TrimSpace(val)
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = val[1 : len(val)-1]
	}
	return key, val, val != ""
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Quote quotes s for a POSIX shell on the remote side.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:+,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
