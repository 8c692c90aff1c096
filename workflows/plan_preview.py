"""A plan rendered for one contact, every step, without sending anything: what an admin checks before a plan
goes live (a dry run against real, often sparse, contact data)."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.action_plans import ActionPlanActivities
    from models.enrollments import ContextInput, PlanPreview, PreviewInput, RenderInput, StepPreview
    from models.plan_context import PlanContext
    from models.plan_templates import DATA_STEP_TYPES
    from models.plans import step_templates

from workflows.errors import cause_message

QUICK = timedelta(seconds=30)


@workflow.defn
class PlanPreviewWorkflow:
    @workflow.run
    async def run(self, input: PreviewInput) -> PlanPreview:
        context: PlanContext = await workflow.execute_activity_method(
            ActionPlanActivities.load_plan_context, ContextInput(account_id=input.account_id,
                                                                 contact_id=input.contact_id),
            start_to_close_timeout=QUICK, summary=f"CRM: contact {input.contact_id}")
        previews = []
        for step in input.plan.steps:
            templates = {".".join(path): template for path, template in step_templates(step)}
            if not templates:
                previews.append(StepPreview(step_id=step.id, type=step.type))
                continue
            html = {"body": True} if step.type == "email" and getattr(step, "html", False) else {}
            try:
                rendered: dict[str, str] = await workflow.execute_activity_method(
                    ActionPlanActivities.render_templates,
                    RenderInput(step_id=step.id, templates=templates, html=html, context=context,
                                blank_missing=step.type in DATA_STEP_TYPES),
                    start_to_close_timeout=QUICK, retry_policy=RetryPolicy(maximum_attempts=1),
                    summary=f"Render {step.id}")
                previews.append(StepPreview(step_id=step.id, type=step.type, rendered=rendered))
            except ActivityError as error:
                previews.append(StepPreview(step_id=step.id, type=step.type, fault=cause_message(error)))
        return PlanPreview(plan_id=input.plan.id, plan_version=input.plan.version, contact=context, steps=previews)
