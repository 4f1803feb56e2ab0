package gnss

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// baudFlag maps a line speed to its termios flag, 0 when it is not a standard rate.
func baudFlag(baud int) uint32 {
	switch baud {
	case 1200:
		return unix.B1200
	case 2400:
		return unix.B2400
	case 4800:
		return unix.B4800
	case 9600:
		return unix.B9600
	case 19200:
		return unix.B19200
	case 38400:
		return unix.B38400
	case 57600:
		return unix.B57600
	case 115200:
		return unix.B115200
	case 230400:
		return unix.B230400
	case 460800:
		return unix.B460800
	case 921600:
		return unix.B921600
	}
	return 0
}

// openDevice opens path for reading without making it the controlling terminal. A tty is
// put in raw mode (8N1, no echo, no line editing, no CR/NL translation), at baud unless it
// is 0; anything else (a FIFO, a file) is read as it is.
func openDevice(path string, baud int) (*os.File, error) {
	// O_NONBLOCK: a serial port without carrier does not block the open, and Go polls the fd.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn() // not f.Fd(): that would put the fd back in blocking mode
	if err != nil {
		f.Close()
		return nil, err
	}
	var terr error
	if err := rc.Control(func(fd uintptr) { _, terr = makeRaw(int(fd), baud) }); err != nil {
		terr = err
	}
	if terr != nil {
		f.Close()
		return nil, terr
	}
	return f, nil
}

// makeRaw sets a tty to raw 8N1 at baud (0 keeps the speed); it reports false, nil for an
// fd that is not a tty.
func makeRaw(fd, baud int) (bool, error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if b := baudFlag(baud); b != 0 {
		t.Cflag &^= unix.CBAUD
		t.Cflag |= b
		t.Ispeed, t.Ospeed = b, b
	}
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return true, fmt.Errorf("set termios: %w", err)
	}
	return true, nil
}
