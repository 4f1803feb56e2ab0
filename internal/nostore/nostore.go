// Package nostore is a paho MQTT message store that keeps nothing. A client that keeps its
// own record of what it sent (the agent's outbox, the simulator's re-send list) sets it, so
// that paho never re-sends in-flight messages by itself after a reconnect: its resume would
// complete the original token as if acknowledged and race with the old connection's writer.
// A persistent session still keeps the broker's subscriptions.
package nostore

import "github.com/eclipse/paho.mqtt.golang/packets"

// Store is the store that keeps nothing; its zero value is ready.
type Store struct{}

func (Store) Open()                             {}
func (Store) Put(string, packets.ControlPacket) {}
func (Store) Get(string) packets.ControlPacket  { return nil }
func (Store) All() []string                     { return nil }
func (Store) Del(string)                        {}
func (Store) Close()                            {}
func (Store) Reset()                            {}
