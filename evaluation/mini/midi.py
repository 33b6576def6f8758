"""A minimal Standard MIDI File (format 0) writer: enough to hand a note list to fluidsynth.

Notes are given in seconds; the file uses 480 ticks per quarter note at a fixed 120 BPM tempo, so one tick is
1/960 s. The track ends with all-notes-off and all-sound-off controllers on every used channel, so a sustained
General MIDI program (organ, accordion) cannot keep the renderer running.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

TICKS_PER_QUARTER = 480
TICKS_PER_SECOND = 960  # 480 ticks per quarter at 120 BPM (500,000 us per quarter)


@dataclass(frozen=True)
class Note:
    start: float     # seconds
    end: float       # seconds
    pitch: int       # MIDI note number 0-127
    velocity: int    # 1-127
    channel: int = 0


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_events_bytes(events: list[tuple[int, int, bytes]]) -> bytes:
    """A format-0 file from ``(tick, order, message)`` events; ``order`` breaks ties (note-offs before note-ons)."""
    events = sorted(events, key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xFF\x51\x03" + (500_000).to_bytes(3, "big"))  # tempo: 120 BPM
    tick = 0
    for t, _, msg in events:
        track += _varlen(t - tick) + msg
        tick = t
    track += b"\x00\xFF\x2F\x00"  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def midi_bytes(notes: list[Note], programs: dict[int, int], tail_sec: float = 0.5) -> bytes:
    """Encode ``notes`` (channel -> GM ``programs``) as a format-0 MIDI file ending with all-notes/sound-off."""
    events: list[tuple[int, int, bytes]] = []
    for channel, program in sorted(programs.items()):
        events.append((0, 0, bytes([0xC0 | channel, program & 0x7F])))
    last = 0
    for n in notes:
        on = max(0, round(n.start * TICKS_PER_SECOND))
        off = max(on + 1, round(n.end * TICKS_PER_SECOND))
        pitch = min(127, max(0, n.pitch))
        events.append((on, 2, bytes([0x90 | n.channel, pitch, min(127, max(1, n.velocity))])))
        events.append((off, 1, bytes([0x80 | n.channel, pitch, 0])))
        last = max(last, off)
    end = last + round(tail_sec * TICKS_PER_SECOND)
    for channel in sorted(set(programs) | {n.channel for n in notes}):
        events.append((end, 3, bytes([0xB0 | channel, 123, 0])))  # all notes off
        events.append((end, 3, bytes([0xB0 | channel, 120, 0])))  # all sound off
    return midi_events_bytes(events)
