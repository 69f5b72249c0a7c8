from django.urls import path

from . import activity, auth_views, views

app_name = "console"

urlpatterns = [
    path("", views.console, name="console"),
    path("snapshot/", views.snapshot, name="snapshot"),
    path("state/", views.set_state, name="state"),
    path("channels/", views.set_channels, name="channels"),
    path("offers/<int:offer_id>/accept/", views.accept_offer, name="accept"),
    path("offers/<int:offer_id>/decline/", views.decline_offer, name="decline"),
    path("interactions/<int:interaction_id>/", views.workspace, name="workspace"),
    path("interactions/<int:interaction_id>/thread/", views.thread, name="thread"),
    path("interactions/<int:interaction_id>/reply/", views.reply, name="reply"),
    path("interactions/<int:interaction_id>/note/", views.note, name="note"),
    path("interactions/<int:interaction_id>/wrap-up/", views.wrap_up, name="wrap-up"),
    path("interactions/<int:interaction_id>/close/", views.close, name="close"),
    path("interactions/<int:interaction_id>/transfer/", views.transfer, name="transfer"),
    path("messages/<int:message_id>/retry/", views.retry_message, name="retry"),
    path(
        "messages/<int:message_id>/attachments/<int:index>/",
        views.attachment,
        name="attachment",
    ),
    path("citizens/<int:contact_id>/", views.citizen, name="citizen"),
    path("citizens/<int:contact_id>/edit/", views.citizen_edit, name="citizen-edit"),
    path("citizens/<int:contact_id>/identities/", views.identity_add, name="identity-add"),
    path(
        "citizens/<int:contact_id>/identities/<int:identity_id>/remove/",
        views.identity_remove,
        name="identity-remove",
    ),
    path("citizens/<int:contact_id>/merge/", views.citizen_merge, name="citizen-merge"),
    path("settings/", views.settings_view, name="settings"),
    path("activity/", activity.activity, name="activity"),
    path(
        "activity/conversations/<int:interaction_id>/",
        activity.past_conversation,
        name="past-conversation",
    ),
    path("session/ping/", auth_views.session_ping, name="session-ping"),
]
