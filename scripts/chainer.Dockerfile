# The Chainer job's image on Azure (notebooks/chainer): Azure ML's CPU base image, with pip told to build
# source packages with setuptools<70. Chainer 7.8.1 ships only a source package whose setup.py imports
# pkg_resources, which current setuptools lacks, so its isolated build fails without this pin (checked with
# pip 25.2, 25.3 and 26.3: 25.3+ reads PIP_BUILD_CONSTRAINT, older pip PIP_CONSTRAINT). Azure installs
# chainer-env.yml on top of this image, with these variables set. The pin is the local workspace's too
# (aml-offline/src/aml_offline/execution/envs.py BUILD_CONSTRAINTS). CPU image: Chainer cannot use a GPU here (see chainer-env.yml).
FROM mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04
RUN echo "setuptools<70" > /etc/pip-build-constraints.txt
ENV PIP_BUILD_CONSTRAINT=/etc/pip-build-constraints.txt \
    PIP_CONSTRAINT=/etc/pip-build-constraints.txt
