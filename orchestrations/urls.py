from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="staff-home"),
    path("runs/", views.runs_list, name="staff-runs"),
    path("runs/<str:run_id>/", views.run_detail, name="staff-run-detail"),
    path("runs/<str:run_id>/cancel", views.run_cancel, name="staff-run-cancel"),
    path("console/", views.console, name="staff-console"),
    path("usage/", views.usage, name="staff-usage"),
]
