package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// message is one line of the daemon's JSON progress stream (build, pull,
// import).
type message struct {
	Stream string `json:"stream"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Aux    *struct {
		ID string `json:"ID"`
	} `json:"aux"`
}

// readStream copies the daemon's progress stream to log as text and
// returns the last image ID it announced. An error message in the stream
// is returned as an error with the last lines of output for context.
func readStream(r io.Reader, log io.Writer) (id string, err error) {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			return id, nil
		} else if err != nil {
			return id, fmt.Errorf("read daemon stream: %w", err)
		}
		text := m.Stream
		if text == "" && m.Status != "" {
			text = m.Status + "\n"
		}
		if text != "" {
			io.WriteString(log, text)
			for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
				if strings.TrimSpace(l) != "" {
					tail = append(tail, strings.TrimSpace(l))
				}
			}
			if len(tail) > 5 {
				tail = tail[len(tail)-5:]
			}
			if s, ok := strings.CutPrefix(strings.TrimSpace(m.Stream), "Successfully built "); ok {
				id = s
			}
		}
		if m.Aux != nil && m.Aux.ID != "" {
			id = m.Aux.ID
		}
		if m.Error != "" {
			io.WriteString(log, "ERROR: "+m.Error+"\n")
			msg := m.Error
			if len(tail) > 0 {
				msg += " (after: " + strings.Join(tail, " | ") + ")"
			}
			return id, errors.New(msg)
		}
	}
}
