import os

SECRET_KEY = os.environ.get("SECRET_KEY", "not-a-secret-in-tests")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = []
DATABASES = {}
USE_TZ = True
