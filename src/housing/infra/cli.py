"""CLI commands of this subpackage (`housing infra ...`); ``housing.cli`` calls :func:`register`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from housing.infra.deploy import DEFAULT_STACK_NAME
from housing.infra.template import DEFAULT_TEMPLATE

STACK_NAME_HELP = "CloudFormation stack name."


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add the `infra` command group to the root app."""
    infra_app = typer.Typer(
        help="The AWS stack in infra/ (docs/infra.md) and the GitHub settings it feeds.", no_args_is_help=True
    )
    infra_app.command("deploy")(deploy)
    infra_app.command("github-config")(github_config)
    app.add_typer(infra_app, name="infra")


def deploy(
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Stack parameter Name=Value (repeat): -p GitHubRepository=org/repo -p EksClusterName=prod.",
        ),
    ] = None,
    parameters_file: Annotated[
        Path | None,
        typer.Option(
            help="Parameters in CloudFormation's JSON format (infra/parameters.example.json); -p wins."
        ),
    ] = None,
    stack_name: Annotated[str, typer.Option(help=STACK_NAME_HELP)] = DEFAULT_STACK_NAME,
    region: Annotated[str | None, typer.Option(envvar="AWS_REGION", help="AWS region.")] = None,
    template: Annotated[Path, typer.Option(help="CloudFormation template.")] = DEFAULT_TEMPLATE,
    run: Annotated[bool, typer.Option("--run", help="Run the command (default: print it).")] = False,
) -> None:
    """Check the parameters against the template, then print (or --run) `aws cloudformation deploy`."""
    from housing.infra.deploy import deploy_command, parse_assignments, read_parameters_file, run_deploy

    parameters = read_parameters_file(parameters_file) if parameters_file else {}
    parameters.update(parse_assignments(param or []))
    argv = deploy_command(parameters, stack_name=stack_name, region=region, template=template)
    typer.echo(shlex.join(argv))
    if run:
        run_deploy(argv)


def github_config(
    stack_outputs: Annotated[
        Path | None,
        typer.Option(help="JSON of `aws cloudformation describe-stacks --stack-name NAME` (offline)."),
    ] = None,
    stack_name: Annotated[
        str | None, typer.Option(help=f"{STACK_NAME_HELP} Read with the AWS CLI (needs credentials).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(envvar="AWS_REGION", help="AWS region (with --stack-name).")
    ] = None,
    repo: Annotated[
        str | None, typer.Option(help="GitHub owner/name; default: the stack's GitHubRepository parameter.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Run the gh commands (default: print them).")
    ] = False,
) -> None:
    """Stack outputs -> `gh` commands for the GitHub environments and variables; manual steps as comments."""
    from housing.infra.github import apply_github_setup, plan_github_setup, render_script
    from housing.infra.outputs import describe_stack, read_stack_outputs
    from housing.infra.template import InfraError

    if stack_outputs is not None and stack_name is None:
        stack, source = read_stack_outputs(stack_outputs), str(stack_outputs)
    elif stack_name is not None and stack_outputs is None:
        stack, source = describe_stack(stack_name, region), f"stack {stack_name}"
    else:
        raise InfraError("give exactly one of --stack-outputs FILE and --stack-name NAME")
    setup = plan_github_setup(stack, repo)
    typer.echo(render_script(setup, source), nl=False)
    if apply:
        count = apply_github_setup(setup)
        typer.echo(f"applied {count} gh command(s) to {setup.repository}; the manual steps above remain")
