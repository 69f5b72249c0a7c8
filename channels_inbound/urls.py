"""Provider webhooks, mounted under /webhooks/ (each channel adds its own routes)."""

from django.urls import URLPattern, URLResolver, path

from channels_inbound.sms import views as sms
from channels_inbound.voice import views as voice

# Twilio and Twilio-compatible gateways (docs/channels.md lists what to configure where).
_TWILIO = {"provider": "twilio"}

urlpatterns: list[URLPattern | URLResolver] = [
    path("twilio/sms/", sms.sms_inbound, _TWILIO, name="twilio-sms"),
    path("twilio/sms/status/", sms.sms_status, _TWILIO, name="twilio-sms-status"),
    path("twilio/voice/", voice.voice_incoming, _TWILIO, name="twilio-voice-incoming"),
    path("twilio/voice/gather/", voice.voice_gather, _TWILIO, name="twilio-voice-gather"),
    path("twilio/voice/wait/", voice.voice_wait, _TWILIO, name="twilio-voice-wait"),
    path("twilio/voice/whisper/", voice.voice_whisper, _TWILIO, name="twilio-voice-whisper"),
    path("twilio/voice/dial/", voice.voice_dial, _TWILIO, name="twilio-voice-dial"),
    path("twilio/voice/recording/", voice.voice_recording, _TWILIO, name="twilio-voice-recording"),
    path("twilio/voice/status/", voice.voice_status, _TWILIO, name="twilio-voice-status"),
]
