"""Speech engines for the mini benchmark: eSpeak NG (pip ``espeakng-loader``) and Flite (Debian ``flite``).

eSpeak NG keeps hidden state between utterances (pitch flutter phase, noise generators) that espeak_Terminate does
not reset, so one process synthesising clips in different orders gives different samples. To make every clip a
pure function of its recipe, the library is initialised once in the worker (which never speaks itself) and each
utterance is spoken by a forked child that starts from that pristine state and seeds the library's noise
generator from the recipe (``espeak_ng_SetRandSeed``).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from .wave import change_speed, read_mono, to_rate, trim_silence


class SpeechError(RuntimeError):
    """A speech engine is missing or produced no audio."""


# --- voices -----------------------------------------------------------------------------------------------------
ESPEAK_ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd"]
# eSpeak NG voice variants (files in espeak-ng-data/voices/!v): human-like male/female presets and named persons.
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "klatt4", "klatt6", "Alex", "Andy", "Annie", "Denis", "Diogo", "Gene", "Hugo", "Lee",
                   "Marco", "Mario", "Michael", "Mike", "Storm", "Tweaky", "adam", "anika", "announcer", "antonio",
                   "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "grandma",
                   "grandpa", "gustave", "ian", "iven", "iven2", "iven3", "john", "kaukovalta", "linda", "max",
                   "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro",
                   "shelby", "steph", "steph2", "travis", "victor", "zac", "croak", "whisper", "whisperf"]
FLITE_VOICES = ["kal16", "awb", "rms", "slt"]  # all 16 kHz, derived from recordings of four people


@dataclass(frozen=True)
class Persona:
    """One synthetic speaker: engine + base voice + speaking rate/pitch + a tape-speed (vocal tract) factor."""
    engine: str          # "espeak" | "flite"
    voice: str           # eSpeak "accent+variant" or a Flite voice name
    rate: int = 170      # eSpeak words per minute; Flite: 100 * duration stretch
    pitch: int = 50      # eSpeak 0-99 (ignored by Flite)
    pitch_range: int = 50
    speed: float = 1.0   # resampling factor applied after synthesis (1.05 = 5 % higher and faster)

    @property
    def base(self) -> str:
        """The underlying engine voice (the unit kept apart between splits and from the pool)."""
        return f"{self.engine}:{self.voice.split('+')[-1]}"

    @property
    def name(self) -> str:
        voice = self.voice.replace("+", "-").replace(" ", "")
        return f"{self.engine}-{voice}-r{self.rate}-p{self.pitch}-s{int(round(self.speed * 100))}"

    def recipe(self, text: str, seed: int) -> dict:
        return {"src": "speech", "engine": self.engine, "voice": self.voice, "rate": self.rate, "pitch": self.pitch,
                "range": self.pitch_range, "speed": self.speed, "text": text, "seed": seed}


def espeak_available() -> bool:
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return False
    return True


def flite_available() -> bool:
    return shutil.which("flite") is not None


# --- eSpeak NG through ctypes ---------------------------------------------------------------------------------
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    """libespeak-ng loaded and initialised once per process; see the module doc for why each clip forks."""

    def __init__(self):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        # AUDIO_OUTPUT_SYNCHRONOUS = 2: samples come through the callback during espeak_Synth
        self.rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.rate <= 0:
            raise SpeechError("libespeak-ng failed to initialise; reinstall it: pip install --force-reinstall "
                              "espeakng-loader")
        self._chunks: list[np.ndarray] = []

        def collect(wav, n, _events):
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(collect)  # keep a reference: ctypes callbacks must outlive their use
        lib.espeak_SetSynthCallback(self._callback)

    def _speak_here(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int) -> np.ndarray:
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechError(f"eSpeak NG has no voice {voice!r}")
        lib.espeak_SetParameter(1, int(rate), 0)         # espeakRATE
        lib.espeak_SetParameter(3, int(pitch), 0)        # espeakPITCH
        lib.espeak_SetParameter(4, int(pitch_range), 0)  # espeakRANGE
        lib.espeak_ng_SetRandSeed(int(seed))
        self._chunks = []
        data = text.encode() + b"\0"
        if lib.espeak_Synth(data, len(data), 0, 0, 0, 0, None, None) != 0:
            raise SpeechError(f"eSpeak NG failed to speak {text!r} with {voice!r}")
        lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int) -> np.ndarray:
        """int16 samples at ``self.rate``, spoken by a forked child so the library state here stays pristine."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: speak once, send the samples, leave without running any Python clean-up
            code = 0
            try:
                os.close(read_fd)
                samples = self._speak_here(text, voice, rate, pitch, pitch_range, seed).astype(np.int16)
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(samples.tobytes())
            except BaseException:  # noqa: BLE001 - report failure through the exit status
                code = 1
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SpeechError(f"eSpeak NG failed to speak {text!r} with voice {voice!r}")
        return np.frombuffer(data, np.int16)


_ESPEAK: _Espeak | None = None


def _espeak() -> _Espeak:
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = _Espeak()
    return _ESPEAK


def _flite(text: str, voice: str, rate: int) -> np.ndarray:
    if not flite_available():
        raise SpeechError("flite is not installed; run scripts/install_system_deps.sh (apt-get install flite)")
    with tempfile.TemporaryDirectory(prefix="m2d-mini-flite-") as tmp:
        out = os.path.join(tmp, "out.wav")
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={100.0 / rate:.3f}", "-t", text, "-o", out]
        proc = subprocess.run(cmd, capture_output=True, timeout=60)
        if proc.returncode != 0 or not os.path.exists(out):
            raise SpeechError(f"flite failed for voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}")
        return read_mono(out)


def synthesize(recipe: dict) -> np.ndarray:
    """Render a speech recipe (see :meth:`Persona.recipe`) to 16 kHz float32, silence trimmed."""
    if recipe["engine"] == "espeak":
        engine = _espeak()
        samples = engine.speak(recipe["text"], recipe["voice"], recipe["rate"], recipe["pitch"], recipe["range"],
                               recipe["seed"])
        wave = to_rate(samples.astype(np.float32) / 32768.0, engine.rate)
    elif recipe["engine"] == "flite":
        wave = _flite(recipe["text"], recipe["voice"], recipe["rate"])
    else:
        raise SpeechError(f"unknown speech engine {recipe['engine']!r}")
    wave = trim_silence(change_speed(wave, recipe["speed"]))
    if wave.size == 0:
        raise SpeechError(f"{recipe['engine']} voice {recipe['voice']!r} produced silence for {recipe['text']!r}")
    return wave
