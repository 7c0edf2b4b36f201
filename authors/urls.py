"""The extension authors' pages, mounted under /authors/."""
from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from authors import views

app_name = "authors"

urlpatterns = [
    path(
        "sign-in/",
        auth_views.LoginView.as_view(
            template_name="authors/sign_in.html",
            redirect_authenticated_user=True,
            next_page=reverse_lazy("authors:extension-list"),
        ),
        name="sign-in",
    ),
    path("sign-out/", auth_views.LogoutView.as_view(next_page=reverse_lazy("authors:sign-in")), name="sign-out"),
    path("", views.ExtensionListView.as_view(), name="extension-list"),
    path("extensions/new/", views.SubmitExtensionView.as_view(), name="submit-extension"),
    path("extensions/<str:extension_id>/versions/new/", views.SubmitVersionView.as_view(), name="submit-version"),
]
