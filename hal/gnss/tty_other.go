//go:build !linux

package gnss

import "os"

// baudFlag accepts the standard rates; only Linux sets them.
func baudFlag(baud int) uint32 {
	switch baud {
	case 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600:
		return uint32(baud)
	}
	return 0
}

// openDevice opens path as it is: tty settings are only made on Linux.
func openDevice(path string, _ int) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY, 0)
}
