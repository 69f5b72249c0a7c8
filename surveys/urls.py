"""Survey routes, mounted at the site's root: public pages under /surveys/, the phone's key
presses with the other provider webhooks under /webhooks/."""

from django.urls import path

from . import views

urlpatterns = [
    path("surveys/<str:token>/", views.answer, name="survey-answer"),
    path("surveys/chat/<str:token>/", views.chat_answer, name="survey-chat-answer"),
    path(
        "webhooks/twilio/voice/survey/",
        views.voice_survey,
        {"provider": "twilio"},
        name="twilio-voice-survey",
    ),
]
