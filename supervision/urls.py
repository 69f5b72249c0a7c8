from django.urls import path

from . import flow_views, views

app_name = "supervision"

urlpatterns = [
    path("", views.wallboard, name="wallboard"),
    path("agents/", views.agents, name="agents"),
    path("agents/<int:agent_id>/state/", views.agent_state, name="agent-state"),
    path("interactions/", views.interactions, name="interactions"),
    path(
        "interactions/<int:interaction_id>/reassign/",
        views.interaction_reassign,
        name="interaction-reassign",
    ),
    path("skills/", views.skills, name="skills"),
    path("skills/team/", views.skills_bulk, name="skills-bulk"),
    path("skills/history/", views.skills_history, name="skills-history"),
    path("queues/", views.queues, name="queues"),
    path("queues/<int:queue_id>/", views.queue_settings, name="queue-settings"),
    path("reports/", views.reports, name="reports"),
    path("staffing/", views.staffing, name="staffing"),
    path("what-if/", views.whatif, name="whatif"),
    path("flows/", flow_views.flow_list, name="flows"),
    path("flows/<int:flow_id>/", flow_views.flow_editor, name="flow-editor"),
    path("flows/<int:flow_id>/versions/", flow_views.flow_save, name="flow-save"),
    path("flows/<int:flow_id>/validate/", flow_views.flow_validate, name="flow-validate"),
    path("flows/<int:flow_id>/test/", flow_views.flow_test, name="flow-test"),
    path("flows/<int:flow_id>/bindings/", flow_views.flow_bindings, name="flow-bindings"),
    path(
        "flows/<int:flow_id>/versions/<int:version_id>/publish/",
        flow_views.flow_publish,
        name="flow-publish",
    ),
    path(
        "flows/<int:flow_id>/versions/<int:version_id>/rollback/",
        flow_views.flow_rollback,
        name="flow-rollback",
    ),
]
