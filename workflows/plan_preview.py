"""A plan rendered for one contact, every step, without sending anything: what an admin checks before a plan
goes live (a dry run against real, often sparse, contact data)."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.action_plans import ActionPlanActivities
    from models.enrollments import ContextInput, PlanPreview, PreviewInput, StepPreview, render_input
    from models.plan_context import PlanContext

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
            request = render_input(step, context)
            if request is None:
                previews.append(StepPreview(step_id=step.id, type=step.type))
                continue
            try:
                rendered: dict[str, str] = await workflow.execute_activity_method(
                    ActionPlanActivities.render_templates, request, start_to_close_timeout=QUICK,
                    retry_policy=RetryPolicy(maximum_attempts=1), summary=f"Render {step.id}")
                previews.append(StepPreview(step_id=step.id, type=step.type, rendered=rendered))
            except ActivityError as error:
                previews.append(StepPreview(step_id=step.id, type=step.type, fault=cause_message(error)))
        return PlanPreview(plan_id=input.plan.id, plan_version=input.plan.version, contact=context, steps=previews)
